//! The codec against frames a real skynet wrote (`vectors.tsv`), round trips, and
//! arbitrary input.

use proptest::prelude::*;

use super::*;

const VECTORS: &str = include_str!("vectors.tsv");

/// The vector lines of `kind`: (description, bytes).
fn vectors(kind: &str) -> Vec<(&'static str, Vec<u8>)> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|fields| fields[0] == kind)
        .map(|fields| (fields[1], unhex(fields[2])))
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The message a `master` vector's description names (`H 2 127.0.0.1:2527`).
fn described(description: &str) -> MasterMessage {
    let words: Vec<&str> = description.split(' ').collect();
    let number = |text: &str| -> u32 {
        match text.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).expect("a hex number"),
            None => text.parse().expect("a number"),
        }
    };
    match words[0] {
        "H" => MasterMessage::Handshake {
            id: number(words[1]) as u8,
            address: words[2].into(),
        },
        "W" => MasterMessage::Wait(number(words[1])),
        "C" => MasterMessage::Connect {
            id: number(words[1]) as u8,
            address: words[2].into(),
        },
        "R" => MasterMessage::Register {
            name: words[1].into(),
            handle: number(words[2]),
        },
        "N" => MasterMessage::Name {
            name: words[1].into(),
            handle: number(words[2]),
        },
        "Q" => MasterMessage::Query(words[1].into()),
        "D" => MasterMessage::Down(number(words[1]) as u8),
        other => panic!("no such message {other}"),
    }
}

#[test]
fn master_frames_match_skynets_bytes_both_ways() {
    let frames = vectors("master");
    assert_eq!(frames.len(), 10);
    for (description, bytes) in frames {
        let message = described(description);
        let mut encoded = Vec::new();
        message.encode(&mut encoded).unwrap();
        assert_eq!(encoded, bytes, "{description}");
        let mut reader = MasterReader::new();
        reader.extend(&bytes);
        assert_eq!(
            reader.next_message().unwrap(),
            Some(message),
            "{description}"
        );
        assert_eq!(reader.next_message().unwrap(), None);
    }
}

#[test]
fn link_frames_match_skynets_layout_both_ways() {
    let frames = vectors("link");
    assert_eq!(frames.len(), 2);
    for (description, bytes) in frames {
        let field = |name: &str| -> &str {
            description
                .split(' ')
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .expect("a field")
        };
        let header = RemoteHeader {
            source: u32::from_str_radix(field("source"), 16).unwrap(),
            ptype: field("ptype").parse().unwrap(),
            destination: u32::from_str_radix(field("destination"), 16).unwrap(),
            session: field("session").parse().unwrap(),
        };
        let body = unhex(field("body"));
        let mut encoded = Vec::new();
        encode_remote(&header, &body, &mut encoded).unwrap();
        assert_eq!(encoded, bytes, "{description}");
        let mut reader = LinkReader::new(MAX_LINK_FRAME);
        reader.extend(&bytes);
        assert_eq!(reader.next_message().unwrap(), Some((header, body)));
        assert_eq!(reader.next_message().unwrap(), None);
        assert_eq!(reader.buffered(), 0);
    }
}

#[test]
fn master_frames_over_255_bytes_are_refused() {
    let long = MasterMessage::Handshake {
        id: 1,
        address: "h".repeat(300),
    };
    assert!(matches!(
        long.encode(&mut Vec::new()),
        Err(WireError::TooLarge { limit: 255, .. })
    ));
}

#[test]
fn bad_master_frames_are_errors_naming_the_problem() {
    let frame = |values: &[Value]| skywasm_pack::pack(values).unwrap();
    let s = |text: &str| Value::String(text.as_bytes().to_vec());
    for (values, want) in [
        (vec![s("X"), Value::Integer(1)], "unknown message `X`"),
        (vec![s("H"), Value::Integer(0), s("a:1")], "harbor id 0"),
        (vec![s("H"), Value::Integer(256), s("a:1")], "a harbor id"),
        (vec![s("W")], "takes 1 arguments"),
        (vec![s("N"), Value::Integer(1), Value::Integer(2)], "a name"),
        (vec![s("R"), s("A"), Value::Integer(-1)], "a handle"),
        (vec![Value::Integer(1)], "no message letter"),
        (vec![s("HH"), Value::Integer(1)], "no message letter"),
    ] {
        let err = MasterMessage::decode(&frame(&values)).unwrap_err();
        assert!(err.to_string().contains(want), "{values:?}: {err}");
    }
    let mut reader = MasterReader::new();
    reader.extend(&[0]);
    assert!(reader.next_message().is_err(), "an empty frame");
}

#[test]
fn link_frames_over_the_limit_or_under_the_trailer_are_refused_early() {
    let mut reader = LinkReader::new(100);
    reader.extend(&101u32.to_be_bytes());
    assert_eq!(
        reader.next_message(),
        Err(WireError::TooLarge {
            size: 101,
            limit: 100
        }),
        "refused on the length alone"
    );
    let mut reader = LinkReader::new(MAX_LINK_FRAME);
    reader.extend(&0x0100_0000u32.to_be_bytes());
    assert!(matches!(
        reader.next_message(),
        Err(WireError::TooLarge { .. })
    ));
    let mut reader = LinkReader::new(100);
    reader.extend(&[0, 0, 0, 11]);
    assert!(matches!(
        reader.next_message(),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        encode_remote(
            &RemoteHeader {
                source: 1,
                ptype: 0,
                destination: 1,
                session: 0
            },
            &vec![0; MAX_LINK_FRAME],
            &mut Vec::new()
        ),
        Err(WireError::TooLarge { .. })
    ));
}

fn message() -> impl Strategy<Value = MasterMessage> {
    let text = "[ -~]{0,40}";
    prop_oneof![
        (1u8.., text).prop_map(|(id, address)| MasterMessage::Handshake { id, address }),
        (0u32..=255).prop_map(MasterMessage::Wait),
        (1u8.., text).prop_map(|(id, address)| MasterMessage::Connect { id, address }),
        (text, any::<u32>()).prop_map(|(name, handle)| MasterMessage::Register { name, handle }),
        (text, any::<u32>()).prop_map(|(name, handle)| MasterMessage::Name { name, handle }),
        text.prop_map(MasterMessage::Query),
        (1u8..).prop_map(MasterMessage::Down),
    ]
}

fn header() -> impl Strategy<Value = RemoteHeader> {
    (any::<u32>(), any::<u8>(), 0u32..=HANDLE_MASK, any::<u32>()).prop_map(
        |(source, ptype, destination, session)| RemoteHeader {
            source,
            ptype,
            destination,
            session,
        },
    )
}

proptest! {
    /// Messages survive encoding and decoding, however the stream is cut.
    #[test]
    fn master_messages_round_trip_through_any_cuts(
        messages in proptest::collection::vec(message(), 1..8),
        cut in 1usize..16,
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            m.encode(&mut stream).unwrap();
        }
        let mut reader = MasterReader::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(cut) {
            reader.extend(chunk);
            while let Some(m) = reader.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, messages);
    }

    /// Remote messages survive framing and reading, however the stream is cut.
    #[test]
    fn link_messages_round_trip_through_any_cuts(
        messages in proptest::collection::vec(
            (header(), proptest::collection::vec(any::<u8>(), 0..300)), 1..8),
        cut in 1usize..64,
    ) {
        let mut stream = Vec::new();
        for (h, body) in &messages {
            encode_remote(h, body, &mut stream).unwrap();
        }
        let mut reader = LinkReader::new(1 << 16);
        let mut got = Vec::new();
        for chunk in stream.chunks(cut) {
            reader.extend(chunk);
            while let Some(m) = reader.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, messages);
        prop_assert_eq!(reader.buffered(), 0);
    }

    /// Arbitrary bytes are messages or errors, never a panic.
    #[test]
    fn arbitrary_bytes_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut master = MasterReader::new();
        master.extend(&bytes);
        while let Ok(Some(_)) = master.next_message() {}
        let mut link = LinkReader::new(256);
        link.extend(&bytes);
        while let Ok(Some(_)) = link.next_message() {}
    }
}
