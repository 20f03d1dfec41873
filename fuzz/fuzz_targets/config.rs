//! The server's configuration parser never panics, and a configuration it
//! accepts can be checked and turned into the server's settings without
//! panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = coffer_server::ServerConfig::parse(text) else {
        return;
    };
    // `parse` has validated it already.
    let _ = config.host_rules();
    let _ = config.storage.is_postgres();
    let _ = config.storage.url_has_password();
    let _ = config.audit.sinks(std::path::Path::new("data"));
    let _ = config.audit.rotation();
    let _ = config.audit.fsync_policy();
});
