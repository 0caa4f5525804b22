//! Feeds arbitrary bytes to the plugin protocol's value decoders, with the
//! real resource schemas' types: they must return an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terraform_provider_etcd::framework::codec;

fuzz_target!(|data: &[u8]| {
    for schema in terraform_provider_etcd::resources::provider().schemas().values() {
        let ty = schema.block.value_type();
        if let Ok(value) = codec::decode_msgpack(data, &ty) {
            // What decodes must encode and decode to the same value.
            let again = codec::decode_msgpack(&codec::encode_msgpack(&value, &ty), &ty);
            assert_eq!(again.as_ref(), Ok(&value));
        }
        let _ = codec::decode_json(data, &ty);
    }
});
