//! The metrics chunk codec and the Gorilla decoder: arbitrary bytes must decode to an error or
//! to samples, and anything encoded must decode to the same bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::tsdb::{codec, xor};

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode(data);
    let _ = codec::first_t(data);
    let _ = xor::decode_xor_samples(data, data.len());
    // Round trip: the bytes as (timestamp delta, value) pairs.
    let mut t = 0i64;
    let samples: Vec<(i64, f64)> = data
        .chunks_exact(10)
        .map(|c| {
            t = t.wrapping_add(1 + (u16::from_le_bytes([c[0], c[1]]) as i64));
            (t, f64::from_bits(u64::from_le_bytes(c[2..10].try_into().unwrap())))
        })
        .collect();
    let back = codec::decode(&codec::encode(&samples)).expect("own encoding decodes");
    assert_eq!(back.len(), samples.len());
    for (a, b) in back.iter().zip(&samples) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.to_bits(), b.1.to_bits());
    }
});
