//! The codec against skynet's own packets (`vectors.tsv`), round trips, and arbitrary input.

use proptest::prelude::*;
use skywasm_pack::{pack, Value};

use super::*;

const VECTORS: &str = include_str!("vectors.tsv");

/// One vector line: kind, description, expected hex (maybe shortened), next session.
struct Vector {
    kind: &'static str,
    description: &'static str,
    hex: &'static str,
    next_session: Option<u32>,
}

fn vectors() -> Vec<Vector> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            Vector {
                kind: fields[0],
                description: fields[1],
                hex: fields[2],
                next_session: fields
                    .get(3)
                    .and_then(|f| f.strip_prefix("next_session="))
                    .and_then(|n| n.parse().ok()),
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `bytes` against a vector's hex, which may be `PREFIX...(N bytes)...SUFFIX`.
fn assert_matches(bytes: &[u8], expected: &str, what: &str) {
    let actual = hex(bytes);
    match expected.split_once("...(") {
        None => assert_eq!(actual, expected, "{what}"),
        Some((prefix, rest)) => {
            let (count, suffix) = rest.split_once(" bytes)...").expect("a shortened vector");
            assert_eq!(
                bytes.len(),
                count.parse::<usize>().unwrap(),
                "{what}: length"
            );
            assert!(actual.starts_with(prefix), "{what}: prefix");
            assert!(actual.ends_with(suffix), "{what}: suffix");
        }
    }
}

/// The packets of a byte stream, each with its length prefix.
fn packets(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        out.push(bytes[..2 + len].to_vec());
        bytes = &bytes[2 + len..];
    }
    out
}

fn packed(values: &[Value]) -> Vec<u8> {
    pack(values).unwrap()
}

/// The request a `cluster-req` description stands for: (address, session, push, payload).
fn request_for(description: &str) -> (Address, u32, bool, Vec<u8>) {
    let field = |name: &str| {
        description
            .split(' ')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {description}"))
    };
    let address = match field("addr") {
        name if name.starts_with('@') => Address::Name(name.to_string()),
        number => Address::Handle(number.parse().unwrap()),
    };
    let session: u32 = field("session").parse().unwrap();
    let push = description.starts_with("push");
    let payload = match field("payload") {
        "6" => packed(&["GET".into(), "a".into()]),
        "7" => packed(&["PING".into(), "x".into()]),
        "4" => packed(&["sdb".into()]),
        "5" => packed(&["wrap".into()]),
        "32768" => packed(&["R".repeat(32765).into()]),
        "32767" => packed(&["R".repeat(32764).into()]),
        "70005" => packed(&["L".repeat(70000).into()]),
        other => panic!("no payload for {other}"),
    };
    (address, session, push, payload)
}

#[test]
fn requests_are_skynet_s_bytes_and_decode_back() {
    let all = vectors();
    let mut checked = 0;
    let mut index = 0;
    while index < all.len() {
        let vector = &all[index];
        index += 1;
        if vector.kind != "cluster-req" {
            continue;
        }
        let (address, session, push, payload) = request_for(vector.description);
        assert_eq!(payload.len().to_string(), {
            let d = vector.description;
            d[d.find("payload=").unwrap() + 8..]
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        });
        let mut bytes = Vec::new();
        encode_request(&address, session, push, &payload, &mut bytes).unwrap();
        let ours = packets(&bytes);
        // The header (or only) packet, then the part lines that follow it.
        let mut expected = vec![vector.hex];
        while index < all.len() && all[index].kind == "cluster-req-part" {
            expected.push(all[index].hex);
            index += 1;
        }
        assert_eq!(ours.len(), expected.len(), "{}", vector.description);
        for (packet, hex) in ours.iter().zip(&expected) {
            assert_matches(packet, hex, vector.description);
        }
        assert_eq!(
            Some(next_session(session)),
            vector.next_session,
            "{}",
            vector.description
        );
        // What skynet sends decodes to the request it came from.
        let mut reader = PacketReader::new();
        reader.extend(&bytes);
        let mut assembler = RequestAssembler::new(1 << 20);
        let mut done = None;
        while let Some(body) = reader.next_packet().unwrap() {
            if let Some(request) = assembler.packet(&body).unwrap() {
                done = Some(request);
            }
        }
        let request = done.expect("a whole request");
        assert_eq!(request.address, address);
        assert_eq!(request.push, push, "{}", vector.description);
        let wire_session = if push && !request_is_multipart(payload.len()) {
            0
        } else {
            session
        };
        assert_eq!(request.session, wire_session);
        assert_eq!(request.msg, payload);
        checked += 1;
    }
    assert_eq!(checked, 9, "every request vector");
}

#[test]
fn the_trace_packet_is_skynet_s_and_tags_the_next_request() {
    let vector = vectors()
        .into_iter()
        .find(|v| v.kind == "cluster-trace")
        .unwrap();
    let mut bytes = Vec::new();
    encode_trace(b"(node-db-4):00000008-1", &mut bytes);
    assert_matches(&bytes, vector.hex, "trace");
    encode_request(&Address::Handle(8), 1, false, b"x", &mut bytes).unwrap();
    let mut reader = PacketReader::new();
    reader.extend(&bytes);
    let mut assembler = RequestAssembler::new(1024);
    assert_eq!(
        assembler.packet(&reader.next_packet().unwrap().unwrap()),
        Ok(None)
    );
    let request = assembler
        .packet(&reader.next_packet().unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        request.trace.as_deref(),
        Some(&b"(node-db-4):00000008-1"[..])
    );
}

#[test]
fn responses_are_skynet_s_bytes_and_decode_back() {
    let all = vectors();
    let cases: [(u32, Reply, usize); 4] = [
        (1, Ok(b"abc".to_vec()), 1),
        (2, Err(b"name not found".to_vec()), 1),
        (3, Ok(vec![b'B'; 32768]), 1),
        (4, Ok([vec![b'B'; 32768], b"+".to_vec()].concat()), 3),
    ];
    let mut lines = all
        .iter()
        .filter(|v| v.kind == "cluster-resp" || v.kind == "cluster-resp-part");
    for (session, reply, count) in cases {
        let mut bytes = Vec::new();
        let result = reply.as_ref().map(Vec::as_slice).map_err(Vec::as_slice);
        encode_response(session, result, &mut bytes).unwrap();
        let ours = packets(&bytes);
        assert_eq!(ours.len(), count, "session {session}");
        for packet in &ours {
            let vector = lines.next().expect("a vector line");
            assert_matches(packet, vector.hex, vector.description);
        }
        let mut assembler = ResponseAssembler::new(1 << 20);
        let mut done = None;
        for packet in &ours {
            if let Some(answer) = assembler.packet(&packet[2..]).unwrap() {
                done = Some(answer);
            }
        }
        assert_eq!(done, Some((session, reply)));
    }
    assert!(lines.next().is_none(), "every response vector");
}

#[test]
fn the_thresholds_are_asymmetric() {
    for (size, request_packets, reply_packets) in
        [(32767, 1, 1), (32768, 2, 1), (32769, 3, 3), (100_000, 5, 5)]
    {
        let msg = vec![7u8; size];
        let mut bytes = Vec::new();
        encode_request(&Address::Handle(1), 9, false, &msg, &mut bytes).unwrap();
        assert_eq!(packets(&bytes).len(), request_packets, "request of {size}");
        bytes.clear();
        encode_response(9, Ok(&msg), &mut bytes).unwrap();
        assert_eq!(packets(&bytes).len(), reply_packets, "reply of {size}");
    }
}

#[test]
fn sessions_wrap_after_2_31_minus_1() {
    assert_eq!(next_session(1), 2);
    assert_eq!(next_session(0x7fff_fffe), 0x7fff_ffff);
    assert_eq!(next_session(0x7fff_ffff), 1);
}

#[test]
fn bad_packets_are_errors() {
    let mut requests = RequestAssembler::new(100);
    for bad in [
        &[][..],
        &[0x00, 1, 2, 3],                // short single request
        &[0x01, 0, 0, 0, 0, 1, 0, 0, 0], // short multipart header
        &[0x80, 0],                      // empty name
        &[0x80, 5, b'@', b'a'],          // name longer than the packet
        &[0x80, 1, 0xff, 1, 0, 0, 0],    // name not UTF-8
        &[0x02, 1, 0, 0],                // part without a session
        &[0x03, 9, 0, 0, 0, 1],          // part of nothing
        &[0x09, 0, 0],                   // unknown kind
    ] {
        assert!(requests.packet(bad).is_err(), "{bad:?}");
    }
    // Over the limit: declared, or in one packet.
    let mut header = vec![0x01];
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&5u32.to_le_bytes());
    header.extend_from_slice(&101u32.to_le_bytes());
    assert!(matches!(
        requests.packet(&header),
        Err(FrameError::TooLarge { .. })
    ));
    let mut single = vec![0x00, 1, 0, 0, 0, 1, 0, 0, 0];
    single.extend_from_slice(&[0; 101]);
    assert!(matches!(
        requests.packet(&single),
        Err(FrameError::TooLarge { .. })
    ));
    // Parts that overrun or fall short of their total.
    let mut requests = RequestAssembler::new(100);
    header[9..13].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(requests.packet(&header), Ok(None));
    assert!(requests.packet(&[0x02, 5, 0, 0, 0, 1, 2, 3, 4, 5]).is_err());
    let mut requests = RequestAssembler::new(100);
    assert_eq!(requests.packet(&header), Ok(None));
    assert!(requests.packet(&[0x03, 5, 0, 0, 0, 1]).is_err());
    let mut responses = ResponseAssembler::new(100);
    for bad in [
        &[1, 0, 0, 0][..],
        &[1, 0, 0, 0, 9],
        &[1, 0, 0, 0, 2, 1],
        &[1, 0, 0, 0, 3, 7],
    ] {
        assert!(responses.packet(bad).is_err(), "{bad:?}");
    }
    let mut reader = PacketReader::new();
    reader.extend(&[0, 0]);
    assert!(reader.next_packet().is_err(), "an empty packet");
}

#[test]
fn too_many_payloads_in_progress_are_refused() {
    let mut requests = RequestAssembler::new(1 << 20);
    for session in 0..=MAX_PENDING_PARTS as u32 {
        let mut header = vec![0x01];
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(&session.to_le_bytes());
        header.extend_from_slice(&1000u32.to_le_bytes());
        let result = requests.packet(&header);
        if (session as usize) < MAX_PENDING_PARTS {
            assert_eq!(result, Ok(None));
        } else {
            assert!(matches!(result, Err(FrameError::Parts(_))));
        }
    }
}

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        any::<u32>().prop_map(Address::Handle),
        "@?[a-z.]{1,20}".prop_map(Address::Name),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn requests_round_trip(
        address in address(),
        session in 1u32..=0x7fff_ffff,
        push in any::<bool>(),
        size in prop_oneof![0usize..100, 32700usize..32900, 65500usize..66000, 98000usize..99000],
        split in 1usize..7,
    ) {
        let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut bytes = Vec::new();
        encode_request(&address, session, push, &msg, &mut bytes).unwrap();
        let mut reader = PacketReader::new();
        let mut assembler = RequestAssembler::new(1 << 20);
        let mut done = Vec::new();
        // Bytes arrive in uneven pieces, as from a socket.
        for piece in bytes.chunks(bytes.len() / split + 1) {
            reader.extend(piece);
            while let Some(body) = reader.next_packet().unwrap() {
                done.extend(assembler.packet(&body).unwrap());
            }
        }
        prop_assert_eq!(done.len(), 1);
        prop_assert_eq!(&done[0].address, &address);
        prop_assert_eq!(&done[0].msg, &msg);
        prop_assert_eq!(done[0].push, push);
        prop_assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn responses_round_trip(
        session in any::<u32>(),
        ok in any::<bool>(),
        size in prop_oneof![0usize..100, 32700usize..32900, 98000usize..99000],
    ) {
        let msg: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let mut bytes = Vec::new();
        let result = if ok { Ok(&msg[..]) } else { Err(&msg[..]) };
        encode_response(session, result, &mut bytes).unwrap();
        let mut reader = PacketReader::new();
        reader.extend(&bytes);
        let mut assembler = ResponseAssembler::new(1 << 20);
        let mut done = Vec::new();
        while let Some(body) = reader.next_packet().unwrap() {
            done.extend(assembler.packet(&body).unwrap());
        }
        let expected = if ok { Ok(msg.clone()) } else { Err(msg[..msg.len().min(MULTI_PART)].to_vec()) };
        prop_assert_eq!(done, vec![(session, expected)]);
    }

    /// Arbitrary bytes from a peer: errors or requests, never a panic, and never more held
    /// than the limits allow.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut reader = PacketReader::new();
        reader.extend(&bytes);
        let mut requests = RequestAssembler::new(4096);
        let mut responses = ResponseAssembler::new(4096);
        while let Ok(Some(body)) = reader.next_packet() {
            if let Ok(Some(request)) = requests.packet(&body) {
                prop_assert!(request.msg.len() <= 4096);
            }
            if let Ok(Some((_, Ok(reply)))) = responses.packet(&body) {
                prop_assert!(reply.len() <= 4096);
            }
        }
        prop_assert!(requests.parts.pending.len() <= MAX_PENDING_PARTS);
        let held: usize = requests.parts.pending.values().map(|p| p.bytes.len()).sum();
        prop_assert!(held <= bytes.len());
    }
}

#[test]
fn payloads_in_progress_together_are_capped() {
    let header = |session: u32, total: u32| {
        // To handle 5: address, session, total.
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&5u32.to_le_bytes());
        bytes.extend_from_slice(&session.to_le_bytes());
        bytes.extend_from_slice(&total.to_le_bytes());
        bytes
    };
    let part = |kind: u8, session: u32, len: usize| {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&session.to_le_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len));
        bytes
    };
    // Two payloads of 100 bytes interleaved need 160 bytes at once: over 150.
    let mut requests = RequestAssembler::with_limits(100, 150);
    assert_eq!(requests.packet(&header(1, 100)), Ok(None));
    assert_eq!(requests.packet(&header(2, 100)), Ok(None));
    assert_eq!(requests.packet(&part(0x02, 1, 80)), Ok(None));
    assert!(matches!(
        requests.packet(&part(0x02, 2, 80)),
        Err(FrameError::Parts(why)) if why.contains("150 bytes")
    ));
    // One after the other, as skynet writes them, they fit: a completed payload frees
    // its bytes.
    let mut requests = RequestAssembler::with_limits(100, 150);
    for session in 1..=3 {
        assert_eq!(requests.packet(&header(session, 100)), Ok(None));
        assert_eq!(requests.packet(&part(0x02, session, 60)), Ok(None));
        let done = requests.packet(&part(0x03, session, 40)).unwrap();
        assert_eq!(done.map(|r| r.msg.len()), Some(100));
    }
}
