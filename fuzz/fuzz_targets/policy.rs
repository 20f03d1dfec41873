//! The policy parser never panics, and a policy it accepts survives its own
//! canonical form: `parse(to_source(p))` grants the same on every target.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = coffer_policy::Policy::parse(source) else {
        return;
    };
    let again = coffer_policy::Policy::parse(&policy.to_source())
        .expect("a policy's canonical source parses");
    assert_eq!(
        again.to_source(),
        policy.to_source(),
        "canonical source is stable"
    );
    // Targets built from the policy's own patterns, with their wildcards
    // filled in, must be granted the same capabilities by both.
    for rule in policy.rules() {
        let p = rule.pattern.as_str();
        for target in [
            p.replace(['*', '+'], "x"),
            p.replace(['*', '+'], ""),
            format!("{p}/y"),
        ] {
            assert_eq!(
                format!("{:?}", policy.capabilities_for(&target)),
                format!("{:?}", again.capabilities_for(&target)),
            );
        }
    }
});
