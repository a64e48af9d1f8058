//! KServe V2 / Open Inference Protocol: datatypes, request parsing, tensor decoding,
//! response encoding and the route handlers.

pub mod datatype;
pub mod decode;
pub mod json_elements;
pub mod request;
pub mod response;
pub mod routes;
