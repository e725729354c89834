//! Arbitrary bytes from a peer into the cluster decoders, both directions: never a panic,
//! never a reassembled payload over the limit, never more held than the input justifies
//! (run with `-malloc_limit_mb`); whatever decodes encodes back to bytes that decode the
//! same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skywasm_cluster_wire::{
    encode_request, encode_response, PacketReader, RequestAssembler, ResponseAssembler,
};

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut reader = PacketReader::new();
    // Bytes arrive in two pieces, as from a socket.
    let (first, second) = data.split_at(data.len() / 2);
    let mut requests = RequestAssembler::new(LIMIT);
    let mut responses = ResponseAssembler::new(LIMIT);
    for piece in [first, second] {
        reader.extend(piece);
        while let Ok(Some(body)) = reader.next_packet() {
            if let Ok(Some(request)) = requests.packet(&body) {
                assert!(request.msg.len() <= LIMIT);
                let mut bytes = Vec::new();
                let session = if request.push { 0 } else { request.session.max(1) };
                if encode_request(&request.address, session, request.push, &request.msg, &mut bytes).is_ok() {
                    let mut again = PacketReader::new();
                    again.extend(&bytes);
                    let mut decoder = RequestAssembler::new(LIMIT);
                    let mut seen = None;
                    while let Ok(Some(body)) = again.next_packet() {
                        if let Ok(Some(decoded)) = decoder.packet(&body) {
                            seen = Some(decoded);
                        }
                    }
                    let seen = seen.expect("what was encoded decodes");
                    assert_eq!(seen.address, request.address);
                    assert_eq!(seen.msg, request.msg);
                }
            }
            if let Ok(Some((session, reply))) = responses.packet(&body) {
                let mut bytes = Vec::new();
                let result = reply.as_ref().map(Vec::as_slice).map_err(Vec::as_slice);
                assert!(encode_response(session, result, &mut bytes).is_ok());
            }
        }
    }
});
