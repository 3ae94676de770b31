use super::*;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SUITE_DATE: &str = "20150830T123600Z";

fn suite_scope() -> CredentialScope<'static> {
    CredentialScope {
        date: "20150830",
        region: "us-east-1",
        service: "service",
    }
}

fn as_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn suite_signature(method: &str) -> String {
    let h = headers(&[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", SUITE_DATE),
    ]);
    let refs = as_refs(&h);
    let parts = RequestParts {
        method,
        path: "/",
        query: "",
        headers: &refs,
        payload_hash: &sha256_hex(b""),
    };
    let signed = vec!["host".to_string(), "x-amz-date".to_string()];
    let canonical = canonical_request(&parts, &signed, &canonical_uri("/")).unwrap();
    sign(
        SUITE_SECRET,
        &suite_scope(),
        &string_to_sign(SUITE_DATE, &suite_scope(), &canonical),
    )
}

// AWS SigV4 test suite, get-vanilla and post-vanilla.
#[test]
fn aws_test_suite_get_vanilla() {
    assert_eq!(
        suite_signature("GET"),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn aws_test_suite_post_vanilla() {
    assert_eq!(
        suite_signature("POST"),
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    );
}

/// Header names are case-insensitive and so are the signature's hex digits: a client that
/// writes either with capitals is verified as one that does not.
#[test]
fn capitalised_signed_headers_and_signature_verify() {
    let h = headers(&[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", SUITE_DATE),
    ]);
    let refs = as_refs(&h);
    let parts = RequestParts {
        method: "GET",
        path: "/",
        query: "",
        headers: &refs,
        payload_hash: &sha256_hex(b""),
    };
    let header = |signed: &str, signature: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={signature}"
        )
    };
    let signature = suite_signature("GET");
    for (signed, signature) in [
        ("host;x-amz-date", signature.clone()),
        ("Host;X-Amz-Date", signature.clone()),
        ("host;x-amz-date", signature.to_ascii_uppercase()),
    ] {
        let value = header(signed, &signature);
        let auth = parse_authorization(&value).unwrap();
        assert_eq!(auth.signed_headers, ["host", "x-amz-date"], "{signed}");
        assert_eq!(
            verify(&parts, &auth, SUITE_DATE, SUITE_SECRET),
            Ok(()),
            "{signed} {signature}"
        );
    }
    let mut wrong = signature.into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let value = header("host;x-amz-date", &String::from_utf8(wrong).unwrap());
    let auth = parse_authorization(&value).unwrap();
    assert_eq!(
        verify(&parts, &auth, SUITE_DATE, SUITE_SECRET),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn canonical_query_sorts_and_encodes() {
    assert_eq!(
        canonical_query("Param2=value2&Param1=value1"),
        "Param1=value1&Param2=value2"
    );
    assert_eq!(canonical_query("b=a b&a=%7e&c"), "a=~&b=a%20b&c=");
    assert_eq!(
        canonical_query("X-Amz-Signature=abc&X-Amz-Date=1"),
        "X-Amz-Date=1"
    );
    assert_eq!(canonical_query(""), "");
}

#[test]
fn canonical_uri_normalises_and_double_encodes() {
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
    assert_eq!(canonical_uri("//a//b/"), "/a/b/");
    assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
}

#[test]
fn header_values_are_trimmed_and_collapsed() {
    let mut out = String::from("x:");
    push_canonical_header_value(&mut out, "  a   b  c ");
    assert_eq!(out, "x:a b c");
}

proptest::proptest! {
    /// Values without whitespace are copied whole; every value comes out as its words joined
    /// by one space, whatever spaces (ASCII, vertical tab, Unicode) it held.
    #[test]
    fn header_values_come_out_as_their_words(
        value in "[ \t\n\u{0b}\u{0c}\r\u{85}\u{a0}\u{2003}a-z;=/.:-]{0,40}"
    ) {
        let mut out = String::new();
        push_canonical_header_value(&mut out, &value);
        proptest::prop_assert_eq!(out, value.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}

#[test]
fn parse_complete_header() {
    let h = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    )
    .unwrap();
    assert_eq!(h.access_key_id, "AKID");
    assert_eq!(h.scope.region, "us-east-1");
    assert_eq!(h.scope.service, "kms");
    assert_eq!(h.signed_headers, vec!["host", "x-amz-date"]);
}

#[test]
fn parse_rejects_incomplete_headers() {
    for bad in [
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request, SignedHeaders=x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=xyz",
        "AWS AKID:signature",
    ] {
        assert!(
            matches!(parse_authorization(bad), Err(SigV4Error::Incomplete(_))),
            "{bad}"
        );
    }
}

#[test]
fn time_window_and_scope_date() {
    let now = parse_amz_date("20150830T123600Z").unwrap();
    let scope = suite_scope();
    assert!(check_time("20150830T125000Z", &scope, now).is_ok());
    assert!(matches!(
        check_time("20150830T125200Z", &scope, now),
        Err(SigV4Error::NotYetCurrent { .. })
    ));
    assert!(matches!(
        check_time("20150830T122000Z", &scope, now),
        Err(SigV4Error::Expired { .. })
    ));
    assert!(matches!(
        check_time(
            "20150831T000000Z",
            &scope,
            parse_amz_date("20150831T000000Z").unwrap()
        ),
        Err(SigV4Error::ScopeDateMismatch { .. })
    ));
    assert!(matches!(
        check_time("2015-08-30", &scope, now),
        Err(SigV4Error::Incomplete(_))
    ));
}

/// Signs a request with the `aws-sigv4` crate (what the AWS SDK for Rust uses) and returns the
/// headers it produced, so that our verifier is checked against an independent implementation.
fn sign_with_aws_sigv4(
    service: &str,
    query: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    let identity: Identity = Credentials::new("AKIDTEST", "sEcReT/+=", None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-3")
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let mut request_headers = vec![
        ("host".to_string(), "127.0.0.1:4566".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
    ];
    request_headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let uri = if query.is_empty() {
        "http://127.0.0.1:4566/".to_string()
    } else {
        format!("http://127.0.0.1:4566/?{query}")
    };
    let signable = SignableRequest::new(
        "POST",
        &uri,
        request_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        request_headers.push((name.to_string(), value.to_string()));
    }
    request_headers
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap()
}

fn verify_headers(
    headers: &[(String, String)],
    query: &str,
    body: &[u8],
    secret: &str,
) -> Result<(), SigV4Error> {
    let auth = parse_authorization(header(headers, "authorization"))?;
    let amz_date = header(headers, "x-amz-date");
    check_time(amz_date, &auth.scope, OffsetDateTime::now_utc())?;
    let payload_hash = sha256_hex(body);
    let refs = as_refs(headers);
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query,
        headers: &refs,
        payload_hash: &payload_hash,
    };
    verify(&parts, &auth, amz_date, secret)
}

#[test]
fn verifies_what_aws_sigv4_signs() {
    let body = br#"{"KeyId":"alias/x"}"#;
    let h = sign_with_aws_sigv4("kms", "", body, &[("x-amz-target", "TrentService.Encrypt")]);
    verify_headers(&h, "", body, "sEcReT/+=").unwrap();
    let auth = parse_authorization(header(&h, "authorization")).unwrap();
    assert_eq!(auth.scope.service, "kms");
    assert_eq!(auth.scope.region, "eu-west-3");
}

#[test]
fn verifies_query_strings_signed_by_aws_sigv4() {
    let query = "Action=GetCallerIdentity&Version=2011-06-15&z=a%20b&a=%2F";
    let h = sign_with_aws_sigv4("sts", query, b"", &[]);
    verify_headers(&h, query, b"", "sEcReT/+=").unwrap();
}

#[test]
fn rejects_tampering() {
    let body = br#"{"KeyId":"alias/x"}"#;
    let h = sign_with_aws_sigv4("kms", "", body, &[("x-amz-target", "TrentService.Encrypt")]);
    assert_eq!(
        verify_headers(&h, "", br#"{"KeyId":"alias/y"}"#, "sEcReT/+="),
        Err(SigV4Error::SignatureMismatch)
    );
    assert_eq!(
        verify_headers(&h, "", body, "other"),
        Err(SigV4Error::SignatureMismatch)
    );
    let mut changed = h.clone();
    for (n, v) in &mut changed {
        if n == "x-amz-target" {
            *v = "TrentService.Decrypt".into();
        }
    }
    assert_eq!(
        verify_headers(&changed, "", body, "sEcReT/+="),
        Err(SigV4Error::SignatureMismatch)
    );
    let missing: Vec<_> = h
        .iter()
        .filter(|(n, _)| n != "x-amz-target")
        .cloned()
        .collect();
    assert_eq!(
        verify_headers(&missing, "", body, "sEcReT/+="),
        Err(SigV4Error::SignatureMismatch)
    );
}

proptest::proptest! {
    #[test]
    fn any_body_and_query_round_trips(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
                                      k in "[A-Za-z0-9._~-]{1,12}", v in "[ -~]{0,16}") {
        let query = format!("{}={}", uri_encode(k.as_bytes(), false), uri_encode(v.as_bytes(), false));
        let h = sign_with_aws_sigv4("kms", &query, &body, &[]);
        proptest::prop_assert!(verify_headers(&h, &query, &body, "sEcReT/+=").is_ok());
        let mut other = body.clone();
        other.push(0);
        proptest::prop_assert_eq!(verify_headers(&h, &query, &other, "sEcReT/+="), Err(SigV4Error::SignatureMismatch));
    }
}

proptest::proptest! {
    /// The positional `X-Amz-Date` reader agrees with the time crate's general parser on
    /// every 16-character string of the format's alphabet: same instant, or refused by both.
    #[test]
    fn amz_date_reader_agrees_with_the_general_parser(
        raw in "[0-9]{8}[T0-9][0-9]{6}[Z0-9]",
        time_secs in 0i64..4_102_444_800,
    ) {
        let format = time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        );
        let general = |v: &str| PrimitiveDateTime::parse(v, format).ok().map(PrimitiveDateTime::assume_utc);
        proptest::prop_assert_eq!(parse_amz_date(&raw), general(&raw));
        let formatted = format_amz_date(OffsetDateTime::from_unix_timestamp(time_secs).unwrap());
        proptest::prop_assert_eq!(parse_amz_date(&formatted), general(&formatted));
        proptest::prop_assert_eq!(
            parse_amz_date(&formatted).map(OffsetDateTime::unix_timestamp),
            Some(time_secs)
        );
    }
}

#[test]
fn amz_dates_out_of_range_or_malformed_are_refused() {
    for bad in [
        "20150230T000000Z",
        "20151301T000000Z",
        "20150830T240000Z",
        "20150830T126000Z",
        "20150830 123600Z",
        "20150830T123600",
        "2015-08-30T12:36:00Z",
        "2015083OT123600Z",
        "20150830T123600Z ",
        "",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
    assert_eq!(
        parse_amz_date("20160229T235959Z").map(OffsetDateTime::unix_timestamp),
        Some(1_456_790_399)
    );
}

#[test]
fn hex_is_two_lower_case_digits_per_byte_at_any_length() {
    let bytes: Vec<u8> = (0..=255).collect();
    for len in [0, 1, 31, 32, 33, 64, 256] {
        let expected: String = bytes[..len].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_lower(&bytes[..len]), expected, "{len} bytes");
    }
}

#[test]
fn credentials_need_exactly_five_non_empty_parts() {
    let header = |credential: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, Signature={}",
            "0".repeat(64)
        )
    };
    let with = |credential: &str| parse_authorization(&header(credential)).map(|_| ());
    let ok_header = header("AKID/20261130/us-east-1/kms/aws4_request");
    let ok = parse_authorization(&ok_header).unwrap();
    assert_eq!(ok.access_key_id, "AKID");
    assert_eq!(
        (ok.scope.date, ok.scope.region, ok.scope.service),
        ("20261130", "us-east-1", "kms")
    );
    assert_eq!(ok.signed_headers, ["host", "x-amz-date"]);
    for bad in [
        "AKID/20261130/us-east-1/kms",
        "AKID/20261130/us-east-1/kms/aws4_request/extra",
        "AKID//us-east-1/kms/aws4_request",
        "AKID/20261130/us-east-1/kms/aws4_request/",
    ] {
        match with(bad) {
            Err(SigV4Error::Incomplete(message)) => {
                assert!(message.contains("should have 5 parts"), "{bad}: {message}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    match with("AKID/2026113/us-east-1/kms/aws4_request") {
        Err(SigV4Error::Incomplete(message)) => assert!(message.contains("yyyyMMdd"), "{message}"),
        other => panic!("{other:?}"),
    }
    match with("AKID/20261130/us-east-1/kms/aws5_request") {
        Err(SigV4Error::Incomplete(message)) => {
            assert!(message.contains("terminator"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
