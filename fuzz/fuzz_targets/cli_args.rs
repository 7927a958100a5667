//! The command line's argument parsing on arbitrary arguments: the clap
//! definition of `cli/src/cli.rs` (compiled in as it is) parses them or
//! returns an error, and renders that error, without panicking. Arguments
//! are the input split at NUL bytes, as raw (possibly non-UTF-8) bytes.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

#[path = "../../cli/src/cli.rs"]
#[allow(dead_code)]
mod cli;

fuzz_target!(|data: &[u8]| {
    let args = std::iter::once(OsString::from("machine-mutex")).chain(
        data.split(|&b| b == 0)
            .map(|arg| OsString::from_vec(arg.to_vec())),
    );
    if let Err(err) = cli::Opts::try_parse_from(args) {
        let _ = err.render().to_string();
    }
});
