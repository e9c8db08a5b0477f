//! A joined PARAMS or GET_VALUES stream of name-value pairs (spec §3.4), decoded and
//! round-tripped; see `pdfworker_fuzz::check_pairs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdfworker_fuzz::check_pairs(data));
