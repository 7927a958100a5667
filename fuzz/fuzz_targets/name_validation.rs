//! Name validation on arbitrary input: never panics, accepts exactly the
//! Go package's grammar (`^[a-zA-Z][a-zA-Z0-9-]*$`, at most 40 bytes), and
//! an acquisition of an invalid name is rejected before anything is touched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use machine_mutex::{lock_file_path, validate_name, Error, InvalidSpec, Spec};

/// The grammar, written independently of the library.
fn grammar(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 40
        && bytes.next().map_or(false, |b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fuzz_target!(|data: &[u8]| {
    let name = match std::str::from_utf8(data) {
        Ok(name) => name,
        Err(_) => return,
    };
    let result = validate_name(name);
    assert_eq!(result.is_ok(), grammar(name), "{name:?}: {result:?}");
    let _ = lock_file_path(name);
    match result {
        Ok(()) => assert!(Spec::new(name).validate().is_ok()),
        Err(err) => {
            let _ = err.to_string();
            if let InvalidSpec::NameCharacter { ch, index, .. } = &err {
                assert_eq!(name[*index..].chars().next(), Some(*ch));
            }
            // Rejected before the lock file is even opened.
            assert!(matches!(
                Spec::new(name).try_acquire(),
                Err(Error::InvalidSpec(_))
            ));
        }
    }
});
