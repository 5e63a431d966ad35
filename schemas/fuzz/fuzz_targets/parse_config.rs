//! Fuzzes the sdk-go MQTT config parser (YAML/JSON) and the protobuf event decoder with
//! arbitrary bytes: both read input an operator or a stored audit row supplies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = workbus_schemas::config::MqttConfig::from_bytes(data) {
        let yaml = config.to_yaml().expect("a parsed config serializes");
        workbus_schemas::config::MqttConfig::from_bytes(yaml.as_bytes())
            .expect("a written config parses again");
    }
    let _ = workbus_schemas::proto::decode(data);
});
