//! The spec parser never panics, whatever bytes it is given.

use bookstore::spec::{parse, parse_bytes, SpecSource, DEFAULT_SPEC_YAML};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bytes(&bytes, SpecSource::Embedded);
    }

    #[test]
    fn yaml_looking_text_never_panics(text in "[a-z_0-9:\\- \\n\\t\\[\\]{},\"'#&*!|>%@`.]{0,300}") {
        let _ = parse(&text, SpecSource::Embedded);
    }

    #[test]
    fn mutated_default_spec_never_panics(pos in 0usize..DEFAULT_SPEC_YAML.len(), byte in any::<u8>(), cut in 0usize..DEFAULT_SPEC_YAML.len()) {
        let mut bytes = DEFAULT_SPEC_YAML.as_bytes().to_vec();
        bytes[pos] = byte;
        let _ = parse_bytes(&bytes, SpecSource::Embedded);
        let _ = parse_bytes(&bytes[..cut], SpecSource::Embedded);
    }
}
