//! Whether an execution device starts: a session for the smallest model there is (one
//! `Identity` node, encoded here) on that device. The server asks once at start, before it
//! loads any model, so `--require-gpu` can refuse to start and the fallback is decided once.

/// Protobuf field `number` of wire type 2 (bytes) holding `payload`.
fn bytes_field(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = payload.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(payload);
    out
}

/// Protobuf field `number` of wire type 0 (varint) holding a small `value`.
fn small_int_field(number: u8, value: u8) -> Vec<u8> {
    vec![number << 3, value]
}

/// `ValueInfoProto` of a float tensor `name` of shape `[1]`.
fn float_value(name: &str) -> Vec<u8> {
    let dimension = small_int_field(1, 1);
    let shape = bytes_field(1, &dimension);
    let tensor_type = [small_int_field(1, 1), bytes_field(2, &shape)].concat();
    let type_proto = bytes_field(1, &tensor_type);
    [bytes_field(1, name.as_bytes()), bytes_field(2, &type_proto)].concat()
}

/// An ONNX model (IR 8, opset 13): `y = Identity(x)`, `x` and `y` float `[1]`.
pub fn identity_model() -> Vec<u8> {
    let node = [
        bytes_field(1, b"x"),
        bytes_field(2, b"y"),
        bytes_field(4, b"Identity"),
    ]
    .concat();
    let graph = [
        bytes_field(1, &node),
        bytes_field(2, b"device_probe"),
        bytes_field(11, &float_value("x")),
        bytes_field(12, &float_value("y")),
    ]
    .concat();
    let opset = [bytes_field(1, b""), small_int_field(2, 13)].concat();
    [
        small_int_field(1, 8),
        bytes_field(7, &graph),
        bytes_field(8, &opset),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_model_is_a_model_destino_reads() {
        let dir = std::env::temp_dir().join(format!("destino-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.onnx");
        std::fs::write(&path, super::identity_model()).unwrap();
        let model = destino_core::OnnxModel::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(model.metadata.inputs[0].name, "x");
        assert_eq!(model.metadata.outputs[0].name, "y");
        assert_eq!(model.ops.len(), 1);
        assert!(model.ops.iter().all(|op| op.name == "Identity"));
    }
}
