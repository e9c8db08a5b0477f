//! A connection's byte stream: records one after another, with the PARAMS, GET_VALUES and
//! BEGIN_REQUEST bodies they carry decoded; see `pdfworker_fuzz::check_records`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdfworker_fuzz::check_records(data));
