use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Serialize, Serializer as _};
use serde_json::Value;

use super::*;

/// Ours and serde_json's text for `value`, which must agree.
fn both<T: Serialize + ?Sized>(value: &T) -> (String, String) {
    let ours = String::from_utf8(to_vec(value).unwrap()).unwrap();
    (ours, serde_json::to_string(value).unwrap())
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(String);

#[derive(Serialize)]
struct Pair(i32, f64);

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Symmetric,
    #[serde(rename = "ECC_NIST_P256")]
    Ecc,
}

#[derive(Serialize)]
enum Shape {
    Nothing,
    Newtype(u8),
    Tuple(i8, String),
    Struct { a: bool, b: Option<u16> },
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    absent: Option<String>,
    present: Option<String>,
    null: Option<String>,
    count: u64,
    delta: i64,
    big: u128,
    small: i128,
    ratio: f32,
    spread: f64,
    not_a_number: f64,
    infinite: f32,
    letter: char,
    kinds: Vec<Kind>,
    shapes: Vec<Shape>,
    context: BTreeMap<String, String>,
    by_number: BTreeMap<i64, bool>,
    by_flag: BTreeMap<bool, u8>,
    by_kind: BTreeMap<Kind, u8>,
    by_letter: BTreeMap<char, u8>,
    unit: Unit,
    newtype: Newtype,
    pair: Pair,
    tuple: (u8, &'static str),
    empty: Vec<u8>,
    nothing: (),
    raw: Value,
}

fn response(text: &str) -> Response {
    Response {
        key_id: format!("arn:aws:kms:eu-west-1:111122223333:key/{text}"),
        absent: None,
        present: Some(text.into()),
        null: None,
        count: u64::MAX,
        delta: i64::MIN,
        big: u128::MAX,
        small: i128::MIN,
        ratio: 0.1,
        spread: -1.5e-300,
        not_a_number: f64::NAN,
        infinite: f32::INFINITY,
        letter: '"',
        kinds: vec![Kind::Symmetric, Kind::Ecc],
        shapes: vec![
            Shape::Nothing,
            Shape::Newtype(7),
            Shape::Tuple(-1, text.into()),
            Shape::Struct { a: true, b: None },
        ],
        context: BTreeMap::from([
            (text.to_string(), text.to_string()),
            ("aws:cloudtrail:arn".into(), "arn:aws:cloudtrail:...".into()),
        ]),
        by_number: BTreeMap::from([(-3, true), (42, false)]),
        by_flag: BTreeMap::from([(false, 0), (true, 1)]),
        by_kind: BTreeMap::from([(Kind::Symmetric, 1), (Kind::Ecc, 2)]),
        by_letter: BTreeMap::from([('\n', 1), ('é', 2)]),
        unit: Unit,
        newtype: Newtype(text.into()),
        pair: Pair(3, 2.0),
        tuple: (1, "one"),
        empty: Vec::new(),
        nothing: (),
        raw: serde_json::json!({"nested": [1, 2.5, null, true, {"k": text}], "": {}}),
    }
}

#[test]
fn every_kind_of_value_is_written_as_serde_json_writes_it() {
    for text in [
        "alice",
        "",
        "quote \" backslash \\",
        "tab\tnew\nline\u{1}\u{1f}\u{7f}",
        "ключ 🗝️",
    ] {
        let (ours, theirs) = both(&response(text));
        assert_eq!(ours, theirs, "{text:?}");
    }
}

#[test]
fn bytes_and_float_keys_are_written_as_serde_json_writes_them() {
    struct Bytes(&'static [u8]);
    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    let (ours, theirs) = both(&Bytes(&[0, 1, 255]));
    assert_eq!(ours, "[0,1,255]");
    assert_eq!(ours, theirs);
    let (ours, theirs) = both(&Bytes(&[]));
    assert_eq!(ours, theirs);

    struct FloatKeys;
    impl Serialize for FloatKeys {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry(&1.5f64, "a")?;
            map.serialize_entry(&-2.0f32, "b")?;
            map.end()
        }
    }
    let (ours, theirs) = both(&FloatKeys);
    assert_eq!(ours, theirs);
}

#[test]
fn keys_json_cannot_hold_are_refused_as_serde_json_refuses_them() {
    let by_list = BTreeMap::from([(vec![1u8], 1u8)]);
    assert!(to_vec(&by_list).is_err());
    assert!(serde_json::to_vec(&by_list).is_err());

    struct NotANumberKey;
    impl Serialize for NotANumberKey {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(&f64::NAN, "a")?;
            map.end()
        }
    }
    assert!(to_vec(&NotANumberKey).is_err());
    assert!(serde_json::to_vec(&NotANumberKey).is_err());
}

#[test]
fn errors_raised_by_a_value_are_passed_on() {
    struct Failing;
    impl Serialize for Failing {
        fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no such thing"))
        }
    }
    let err = to_vec(&vec![Failing]).unwrap_err();
    assert_eq!(err.to_string(), "no such thing");
    // collect_str goes through Display and then the string writer.
    let mut out = Vec::new();
    (&mut Serializer { out: &mut out })
        .collect_str(&format_args!("a\"{}", 1))
        .unwrap();
    assert_eq!(out, br#""a\"1""#);
}

/// Any JSON value, nested up to four levels, with strings that favour the bytes JSON escapes.
fn any_value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        "[\\x00-\\x22\\x5c\\x7f-\\u{10ffff}a-z]{0,40}"
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(text.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_string_is_escaped_as_serde_json_escapes_it(
        text in prop_oneof![any::<String>(), "[\\x00-\\x22\\x5c\\x7f-\\u{10ffff}a-z]{0,64}"]
    ) {
        let mut out = Vec::new();
        write_str(&mut out, &text);
        prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn any_float_is_written_as_serde_json_writes_it(single in any::<f32>(), double in any::<f64>()) {
        let (ours, theirs) = both(&(single, double));
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn any_json_value_is_written_as_serde_json_writes_it(value in any_value()) {
        let (ours, theirs) = both(&value);
        prop_assert_eq!(ours, theirs);
    }
}
