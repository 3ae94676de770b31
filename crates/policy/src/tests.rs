use proptest::prelude::*;

use super::*;

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn alice() -> Caller {
    Caller::User {
        account: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
    }
}

fn bob_elsewhere() -> Caller {
    Caller::User {
        account: OTHER.into(),
        arn: format!("arn:aws:iam::{OTHER}:user/bob"),
    }
}

fn role_session() -> Caller {
    Caller::AssumedRole {
        account: ACCOUNT.into(),
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/auditor"),
        session_arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/auditor/s1"),
    }
}

fn cloudtrail() -> Caller {
    Caller::Service {
        name: "cloudtrail.amazonaws.com".into(),
    }
}

fn identity(doc: &str) -> Policy {
    Policy::parse(doc, PolicyKind::Identity).expect("identity policy parses")
}

fn resource(doc: &str) -> Policy {
    Policy::parse(doc, PolicyKind::Resource).expect("resource policy parses")
}

#[test]
fn wildcards_match_as_aws_documents_them() {
    let cases = [
        ("*", "", true),
        ("*", "anything", true),
        (
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyWithoutPlaintext",
            true,
        ),
        ("kms:GenerateDataKey*", "kms:GenerateDataKey", true),
        ("kms:Gen?rateDataKey", "kms:GenerateDataKey", true),
        ("kms:Gen?rateDataKey", "kms:GenrateDataKey", false),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("*.json.gz", "x/y/z.json.gz", true),
        ("abc", "ABC", false),
        ("**", "x", true),
        ("?", "", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(
            wildcard_match(pattern, text, false),
            expected,
            "{pattern} vs {text}"
        );
    }
    assert!(wildcard_match(
        "kms:generatedatakey*",
        "kms:GenerateDataKey",
        true
    ));
}

#[test]
fn arn_like_compares_the_six_parts_separately() {
    let cases = [
        (
            "arn:aws:cloudtrail:*:111122223333:trail/*",
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/main",
            true,
        ),
        (
            "arn:aws:cloudtrail:*:111122223333:trail/*",
            "arn:aws:cloudtrail:us-east-1:444455556666:trail/main",
            false,
        ),
        // A `*` in one part does not swallow the colons of the next parts.
        (
            "arn:aws:s3:*:*:*",
            "arn:aws:s3:::bucket/key:with:colons",
            true,
        ),
        (
            "arn:aws:iam::*",
            "arn:aws:iam::111122223333:user/alice",
            false,
        ),
        (
            "arn:aws:iam::*:user/*",
            "arn:aws:iam::111122223333:user/alice",
            true,
        ),
        (
            "arn:aws:kms:us-east-1:111122223333:key/*",
            "not-an-arn",
            false,
        ),
    ];
    for (pattern, arn, expected) in cases {
        assert_eq!(arn_match(pattern, arn), expected, "{pattern} vs {arn}");
    }
}

#[test]
fn documents_are_validated_when_written() {
    let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    let cases: &[(&str, PolicyKind, Option<&str>)] = &[
        (ok, PolicyKind::Identity, None),
        (
            r#"{"Statement":{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::b/*"}}"#,
            PolicyKind::Identity,
            None,
        ),
        ("not json", PolicyKind::Identity, Some("not valid JSON")),
        ("[]", PolicyKind::Identity, Some("JSON object")),
        (
            r#"{"Version":"2012-10-17"}"#,
            PolicyKind::Identity,
            Some("missing Statement"),
        ),
        (
            r#"{"Version":"2020-01-01","Statement":[]}"#,
            PolicyKind::Identity,
            Some("version"),
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            PolicyKind::Identity,
            Some("non-empty"),
        ),
        (
            r#"{"Statement":[{"Effect":"Permit","Action":"*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            Some("Effect"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            PolicyKind::Identity,
            Some("missing Action"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            Some("both Action and NotAction"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#,
            PolicyKind::Identity,
            Some("missing Resource"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}]}"#,
            PolicyKind::Identity,
            Some("must not specify a Principal"),
        ),
        (ok, PolicyKind::Resource, Some("missing Principal")),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole","Resource":"*"}]}"#,
            PolicyKind::Trust,
            Some("must not specify a Resource"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"kms:*","Resource":"*"}]}"#,
            PolicyKind::Resource,
            Some("invalid principal"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1111:root"},"Action":"kms:*","Resource":"*"}]}"#,
            PolicyKind::Resource,
            Some("invalid principal"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Robot":"x"},"Action":"kms:*","Resource":"*"}]}"#,
            PolicyKind::Resource,
            Some("unknown principal type"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"Decrypt","Resource":"*"}]}"#,
            PolicyKind::Identity,
            Some("service:operation"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"key/1"}]}"#,
            PolicyKind::Identity,
            Some("must be \"*\" or an ARN"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}"#,
            PolicyKind::Identity,
            Some("unknown condition operator"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"NumericLessThan":{"a":"ten"}}}]}"#,
            PolicyKind::Identity,
            Some("not a number"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}]}"#,
            PolicyKind::Identity,
            Some("IP address"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"NullIfExists":{"a":"true"}}}]}"#,
            PolicyKind::Identity,
            Some("unknown condition operator"),
        ),
        (
            r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            Some("unique"),
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}]}"#,
            PolicyKind::Identity,
            Some("unknown field 'Extra'"),
        ),
    ];
    for (doc, kind, expected_error) in cases {
        let result = Policy::parse(doc, *kind);
        match (expected_error, result) {
            (None, Ok(_)) => {}
            (Some(fragment), Err(error)) => assert!(
                error.message().contains(fragment),
                "{doc}: expected an error containing '{fragment}', got '{error}'"
            ),
            (None, Err(error)) => panic!("{doc}: unexpected error {error}"),
            (Some(fragment), Ok(_)) => panic!("{doc}: accepted, expected '{fragment}'"),
        }
    }
}

/// One condition, evaluated against a request that has `key` set to `values` (or absent).
fn condition_holds(operator: &str, policy_values: &str, values: Option<&[&str]>) -> bool {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*",
            "Condition":{{"{operator}":{{"test:Key":{policy_values}}}}}}}]}}"#
    );
    let policy = Policy::parse(&doc, PolicyKind::Identity)
        .unwrap_or_else(|e| panic!("{operator} {policy_values}: {e}"));
    let mut request = RequestContext::new(alice(), "kms:Decrypt", KEY_ARN);
    if let Some(values) = values {
        request.set_values("Test:key", values.iter().map(|v| v.to_string()).collect());
    }
    policy.evaluate(&request).allowed.is_some()
}

#[test]
fn every_operator_matches_does_not_match_and_handles_a_missing_key() {
    type Case = (
        &'static str,
        &'static str,
        Option<&'static [&'static str]>,
        bool,
    );
    let cases: &[Case] = &[
        ("StringEquals", r#""abc""#, Some(&["abc"]), true),
        ("StringEquals", r#""abc""#, Some(&["ABC"]), false),
        ("StringEquals", r#"["x","abc"]"#, Some(&["abc"]), true),
        ("StringEquals", r#""abc""#, None, false),
        ("StringNotEquals", r#""abc""#, Some(&["abd"]), true),
        ("StringNotEquals", r#""abc""#, Some(&["abc"]), false),
        ("StringNotEquals", r#"["a","b"]"#, Some(&["b"]), false),
        // A negated operator holds when the key is absent.
        ("StringNotEquals", r#""abc""#, None, true),
        ("StringEqualsIgnoreCase", r#""AbC""#, Some(&["aBc"]), true),
        (
            "StringNotEqualsIgnoreCase",
            r#""AbC""#,
            Some(&["aBc"]),
            false,
        ),
        (
            "StringLike",
            r#""arn:aws:cloudtrail:*:111122223333:trail/*""#,
            Some(&["arn:aws:cloudtrail:eu-west-1:111122223333:trail/t"]),
            true,
        ),
        ("StringLike", r#""a?c""#, Some(&["abbc"]), false),
        ("StringNotLike", r#""a*""#, Some(&["bcd"]), true),
        ("StringNotLike", r#""a*""#, Some(&["abc"]), false),
        ("NumericEquals", "10", Some(&["10.0"]), true),
        ("NumericNotEquals", r#""10""#, Some(&["11"]), true),
        ("NumericLessThan", r#""10""#, Some(&["9"]), true),
        ("NumericLessThan", r#""10""#, Some(&["10"]), false),
        ("NumericLessThanEquals", r#""10""#, Some(&["10"]), true),
        ("NumericGreaterThan", r#""10""#, Some(&["10"]), false),
        ("NumericGreaterThanEquals", r#""10""#, Some(&["10"]), true),
        ("NumericEquals", r#""10""#, Some(&["ten"]), false),
        (
            "DateLessThan",
            r#""2030-01-01T00:00:00Z""#,
            Some(&["2026-11-28T12:00:00Z"]),
            true,
        ),
        (
            "DateGreaterThan",
            r#""2030-01-01T00:00:00Z""#,
            Some(&["2026-11-28T12:00:00Z"]),
            false,
        ),
        ("DateEquals", r#""2026-01-01""#, Some(&["1767225600"]), true),
        (
            "DateNotEquals",
            r#""2026-01-01""#,
            Some(&["1767225601"]),
            true,
        ),
        (
            "DateLessThanEquals",
            "1767225600",
            Some(&["2026-01-01T00:00:00Z"]),
            true,
        ),
        (
            "DateGreaterThanEquals",
            "1767225600",
            Some(&["2025-12-31T23:59:59Z"]),
            false,
        ),
        ("Bool", "true", Some(&["true"]), true),
        ("Bool", r#""false""#, Some(&["true"]), false),
        ("Bool", "true", None, false),
        ("BinaryEquals", r#""QUJD""#, Some(&["QUJD"]), true),
        (
            "IpAddress",
            r#""203.0.113.0/24""#,
            Some(&["203.0.113.9"]),
            true,
        ),
        (
            "IpAddress",
            r#""203.0.113.0/24""#,
            Some(&["203.0.114.9"]),
            false,
        ),
        ("IpAddress", r#""127.0.0.1""#, Some(&["127.0.0.1"]), true),
        (
            "IpAddress",
            r#""2001:db8::/32""#,
            Some(&["2001:db8::1"]),
            true,
        ),
        ("IpAddress", r#""0.0.0.0/0""#, Some(&["192.0.2.1"]), true),
        (
            "NotIpAddress",
            r#""203.0.113.0/24""#,
            Some(&["198.51.100.1"]),
            true,
        ),
        (
            "NotIpAddress",
            r#""203.0.113.0/24""#,
            Some(&["203.0.113.1"]),
            false,
        ),
        (
            "ArnEquals",
            r#""arn:aws:iam::111122223333:user/alice""#,
            Some(&["arn:aws:iam::111122223333:user/alice"]),
            true,
        ),
        (
            "ArnLike",
            r#""arn:aws:iam::*:user/a*""#,
            Some(&["arn:aws:iam::111122223333:user/alice"]),
            true,
        ),
        (
            "ArnNotEquals",
            r#""arn:aws:iam::111122223333:user/alice""#,
            Some(&["arn:aws:iam::111122223333:user/bob"]),
            true,
        ),
        (
            "ArnNotLike",
            r#""arn:aws:iam::*:user/a*""#,
            Some(&["arn:aws:iam::111122223333:user/alice"]),
            false,
        ),
        ("Null", "true", None, true),
        ("Null", "true", Some(&["x"]), false),
        ("Null", "false", Some(&["x"]), true),
        ("Null", r#""false""#, None, false),
        // IfExists: a missing key satisfies the condition, a present one is checked.
        ("StringEqualsIfExists", r#""abc""#, None, true),
        ("StringEqualsIfExists", r#""abc""#, Some(&["abd"]), false),
        ("StringEqualsIfExists", r#""abc""#, Some(&["abc"]), true),
        ("NumericLessThanIfExists", "5", Some(&["6"]), false),
        // Set qualifiers on multi-valued keys.
        (
            "ForAllValues:StringEquals",
            r#"["a","b"]"#,
            Some(&["a", "b"]),
            true,
        ),
        (
            "ForAllValues:StringEquals",
            r#"["a","b"]"#,
            Some(&["a", "c"]),
            false,
        ),
        ("ForAllValues:StringEquals", r#"["a","b"]"#, None, true),
        (
            "ForAnyValue:StringEquals",
            r#"["a","b"]"#,
            Some(&["c", "b"]),
            true,
        ),
        (
            "ForAnyValue:StringEquals",
            r#"["a","b"]"#,
            Some(&["c", "d"]),
            false,
        ),
        ("ForAnyValue:StringEquals", r#"["a","b"]"#, None, false),
        (
            "ForAnyValue:StringLike",
            r#""aws:*""#,
            Some(&["purpose", "aws:cloudtrail:arn"]),
            true,
        ),
        (
            "ForAllValues:StringNotEquals",
            r#""a""#,
            Some(&["b", "c"]),
            true,
        ),
        (
            "ForAllValues:StringNotEquals",
            r#""a""#,
            Some(&["b", "a"]),
            false,
        ),
        // Without a qualifier, any value of a multi-valued key may match a positive operator...
        ("StringEquals", r#""b""#, Some(&["a", "b"]), true),
        // ...and none may match a negated one.
        ("StringNotEquals", r#""b""#, Some(&["a", "b"]), false),
    ];
    for (operator, policy_values, values, expected) in cases {
        assert_eq!(
            condition_holds(operator, policy_values, *values),
            *expected,
            "{operator} {policy_values} with {values:?}"
        );
    }
}

#[test]
fn condition_key_names_are_case_insensitive_and_conditions_are_anded() {
    let policy = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*",
            "Condition":{"StringEquals":{"KMS:EncryptionContext:Purpose":"logs","kms:CallerAccount":"111122223333"},
                         "Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let base = RequestContext::new(alice(), "kms:Decrypt", KEY_ARN)
        .with("kms:encryptioncontext:purpose", "logs")
        .with("kms:CallerAccount", ACCOUNT);
    assert!(
        policy.evaluate(&base).allowed.is_none(),
        "SecureTransport missing"
    );
    let secure = base.clone().with("aws:SecureTransport", "true");
    assert!(policy.evaluate(&secure).allowed.is_some());
    let wrong_purpose = secure.with("kms:EncryptionContext:purpose", "Logs");
    assert!(
        policy.evaluate(&wrong_purpose).allowed.is_none(),
        "values are case-sensitive"
    );
}

#[test]
fn actions_are_case_insensitive_and_resources_are_not() {
    let policy = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"KMS:generatedatakey*","Resource":"arn:aws:s3:::Logs/*"}]}"#,
    );
    let allowed = |action: &str, resource: &str| {
        policy
            .evaluate(&RequestContext::new(alice(), action, resource))
            .allowed
            .is_some()
    };
    assert!(allowed("kms:GenerateDataKey", "arn:aws:s3:::Logs/x"));
    assert!(allowed(
        "kms:GenerateDataKeyWithoutPlaintext",
        "arn:aws:s3:::Logs/a/b"
    ));
    assert!(!allowed("kms:Decrypt", "arn:aws:s3:::Logs/x"));
    assert!(!allowed("kms:GenerateDataKey", "arn:aws:s3:::logs/x"));
}

#[test]
fn not_action_not_resource_and_not_principal_apply_to_everything_else() {
    let policy = resource(
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"EverythingButDelete","Effect":"Allow","Principal":"*","NotAction":"kms:ScheduleKeyDeletion","NotResource":"arn:aws:kms:*:*:alias/*"},
            {"Sid":"DenyAllButAlice","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let verdict = |caller: Caller, action: &str, resource: &str| {
        policy.evaluate(&RequestContext::new(caller, action, resource))
    };
    assert!(verdict(alice(), "kms:Encrypt", KEY_ARN).allowed.is_some());
    assert!(
        verdict(alice(), "kms:ScheduleKeyDeletion", KEY_ARN)
            .allowed
            .is_none()
    );
    assert!(
        verdict(
            alice(),
            "kms:Encrypt",
            "arn:aws:kms:us-east-1:111122223333:alias/x"
        )
        .allowed
        .is_none()
    );
    assert!(verdict(alice(), "kms:Decrypt", KEY_ARN).denied_by.is_none());
    assert_eq!(
        verdict(role_session(), "kms:Decrypt", KEY_ARN)
            .denied_by
            .as_deref(),
        Some("DenyAllButAlice")
    );
}

#[test]
fn principals_match_users_roles_sessions_accounts_and_services() {
    let policy_for = |principal: &str| {
        resource(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"kms:*","Resource":"*"}}]}}"#
        ))
    };
    let cases: &[(&str, Caller, Option<PrincipalMatch>)] = &[
        (r#""*""#, bob_elsewhere(), Some(PrincipalMatch::Direct)),
        (r#"{"AWS":"*"}"#, cloudtrail(), Some(PrincipalMatch::Direct)),
        (
            r#"{"AWS":"111122223333"}"#,
            alice(),
            Some(PrincipalMatch::ViaAccount),
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
            alice(),
            Some(PrincipalMatch::ViaAccount),
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
            Caller::Root {
                account: ACCOUNT.into(),
            },
            Some(PrincipalMatch::Direct),
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
            bob_elsewhere(),
            None,
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
            alice(),
            Some(PrincipalMatch::Direct),
        ),
        (
            r#"{"AWS":["arn:aws:iam::444455556666:user/bob"]}"#,
            alice(),
            None,
        ),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:role/auditor"}"#,
            role_session(),
            Some(PrincipalMatch::Direct),
        ),
        (
            r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/auditor/s1"}"#,
            role_session(),
            Some(PrincipalMatch::Direct),
        ),
        (
            r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/auditor/s2"}"#,
            role_session(),
            None,
        ),
        (
            r#"{"Service":"cloudtrail.amazonaws.com"}"#,
            cloudtrail(),
            Some(PrincipalMatch::Direct),
        ),
        (r#"{"Service":["s3.amazonaws.com"]}"#, cloudtrail(), None),
        (r#"{"Service":"cloudtrail.amazonaws.com"}"#, alice(), None),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:root","Service":"cloudtrail.amazonaws.com"}"#,
            cloudtrail(),
            Some(PrincipalMatch::Direct),
        ),
    ];
    for (principal, caller, expected) in cases {
        let verdict = policy_for(principal).evaluate(&RequestContext::new(
            caller.clone(),
            "kms:Decrypt",
            KEY_ARN,
        ));
        assert_eq!(verdict.allowed, *expected, "{principal} for {caller:?}");
    }
}

#[test]
fn policy_variables_are_substituted_in_2012_policies_only() {
    let doc = |version: &str| {
        format!(
            r#"{{"Version":"{version}","Statement":[{{"Effect":"Allow","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::home/${{aws:username}}/*",
                "Condition":{{"StringLike":{{"s3:prefix":"${{aws:username}}/${{*}}"}}}}}}]}}"#
        )
    };
    let modern = identity(&doc("2012-10-17"));
    let legacy = identity(&doc("2008-10-17"));
    let request = |resource: &str, prefix: &str| {
        RequestContext::new(alice(), "s3:GetObject", resource).with("s3:prefix", prefix.to_string())
    };
    assert!(
        modern
            .evaluate(&request("arn:aws:s3:::home/alice/notes", "alice/*"))
            .allowed
            .is_some()
    );
    assert!(
        modern
            .evaluate(&request("arn:aws:s3:::home/bob/notes", "alice/*"))
            .allowed
            .is_none()
    );
    // `${*}` is a literal asterisk, not a wildcard.
    assert!(
        modern
            .evaluate(&request("arn:aws:s3:::home/alice/notes", "alice/x"))
            .allowed
            .is_none()
    );
    assert!(
        legacy
            .evaluate(&request("arn:aws:s3:::home/alice/notes", "alice/*"))
            .allowed
            .is_none()
    );
    assert!(
        legacy
            .evaluate(&request(
                "arn:aws:s3:::home/${aws:username}/notes",
                "${aws:username}/${*}"
            ))
            .allowed
            .is_some()
    );

    // A variable with no value leaves the element unmatched unless it has a default.
    let role = RequestContext::new(role_session(), "s3:GetObject", "arn:aws:s3:::home/guest/x");
    assert!(modern.evaluate(&role).allowed.is_none());
    let with_default = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",
            "Resource":"arn:aws:s3:::home/${aws:username, 'guest'}/*"}]}"#,
    );
    assert!(with_default.evaluate(&role).allowed.is_some());
}

fn decide(
    caller: Caller,
    identity_policies: &[&Policy],
    resource_policy: Option<&Policy>,
    authority: ResourceAuthority,
    granted: bool,
) -> Decision {
    let request = RequestContext::new(caller, "kms:Decrypt", KEY_ARN);
    Authorization {
        request: &request,
        identity_policies,
        resource_policy,
        resource_account: ACCOUNT,
        authority,
        granted,
    }
    .decide()
}

#[test]
fn identity_and_resource_policies_combine_as_in_aws() {
    let allow_kms = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
    );
    let deny_decrypt = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDecrypt","Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let delegate_to_root = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let alice_only = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let trust_other_account = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let service_only = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let root = Caller::Root {
        account: ACCOUNT.into(),
    };
    use ResourceAuthority::{Optional, Required};
    let cases: Vec<(&str, Decision)> = vec![
        (
            "KMS, root-delegating key, user with IAM allow",
            decide(
                alice(),
                &[&allow_kms],
                Some(&delegate_to_root),
                Required,
                false,
            ),
        ),
        (
            "KMS, root-delegating key, user without IAM policy",
            decide(alice(), &[], Some(&delegate_to_root), Required, false),
        ),
        (
            "KMS, key policy names the user, no IAM policy",
            decide(alice(), &[], Some(&alice_only), Required, false),
        ),
        (
            "KMS, key policy ignores IAM when it does not delegate",
            decide(
                role_session(),
                &[&allow_kms],
                Some(&alice_only),
                Required,
                false,
            ),
        ),
        (
            "KMS, root of the owning account with a delegating key",
            decide(root.clone(), &[], Some(&delegate_to_root), Required, false),
        ),
        (
            "KMS, root locked out by a policy that does not name it",
            decide(root, &[], Some(&service_only), Required, false),
        ),
        (
            "KMS, explicit deny in IAM beats the key policy",
            decide(
                alice(),
                &[&allow_kms, &deny_decrypt],
                Some(&alice_only),
                Required,
                false,
            ),
        ),
        (
            "KMS, a grant allows without any policy",
            decide(role_session(), &[], Some(&alice_only), Required, true),
        ),
        (
            "KMS, a grant does not beat an explicit deny",
            decide(alice(), &[&deny_decrypt], Some(&alice_only), Required, true),
        ),
        (
            "cross-account, key trusts the account and the user's IAM allows",
            decide(
                bob_elsewhere(),
                &[&allow_kms],
                Some(&trust_other_account),
                Required,
                false,
            ),
        ),
        (
            "cross-account, key trusts the account but the user has no IAM allow",
            decide(
                bob_elsewhere(),
                &[],
                Some(&trust_other_account),
                Required,
                false,
            ),
        ),
        (
            "cross-account, IAM allows but the key does not trust the account",
            decide(
                bob_elsewhere(),
                &[&allow_kms],
                Some(&delegate_to_root),
                Required,
                false,
            ),
        ),
        (
            "service allowed by the resource policy",
            decide(cloudtrail(), &[], Some(&service_only), Required, false),
        ),
        (
            "service not named by the resource policy",
            decide(cloudtrail(), &[], Some(&delegate_to_root), Required, false),
        ),
        (
            "S3-style, identity allow alone within the account",
            decide(alice(), &[&allow_kms], None, Optional, false),
        ),
        (
            "S3-style, resource policy naming the user alone",
            decide(alice(), &[], Some(&alice_only), Optional, false),
        ),
        (
            "S3-style, nothing allows",
            decide(role_session(), &[], Some(&alice_only), Optional, false),
        ),
        (
            "S3-style, cross-account needs both sides",
            decide(bob_elsewhere(), &[&allow_kms], None, Optional, false),
        ),
        (
            "KMS, a grant to another account's user needs no policy on either side",
            decide(bob_elsewhere(), &[], Some(&alice_only), Required, true),
        ),
    ];
    let expected = [
        true, false, true, false, true, false, false, true, false, true, false, false, true, false,
        true, true, false, false, true,
    ];
    assert_eq!(cases.len(), expected.len());
    for ((name, decision), allowed) in cases.iter().zip(expected) {
        assert_eq!(decision.is_allowed(), allowed, "{name}: {decision:?}");
    }
    assert_eq!(cases[6].1, Decision::ExplicitDeny("NoDecrypt".into()));
}

/// The bucket policy of spec §5.11 and the key policy of §5.12, as users paste them.
#[test]
fn the_cloudtrail_policies_admit_the_service_and_nothing_else() {
    let trail = "arn:aws:cloudtrail:us-east-1:111122223333:trail/main";
    let bucket_policy = Policy::parse(
        r#"{
          "Version": "2012-10-17",
          "Statement": [
            {"Sid": "AWSCloudTrailAclCheck20150319", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": "arn:aws:s3:::trail-logs",
             "Condition": {"StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"}}},
            {"Sid": "AWSCloudTrailWrite20150319", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::trail-logs/AWSLogs/111122223333/*",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                                            "aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"}}}
          ]
        }"#,
        PolicyKind::Resource,
    )
    .expect("the documented bucket policy parses");
    let put = |caller: Caller, key: &str, acl: &str, source: &str| {
        let request = RequestContext::new(
            caller,
            "s3:PutObject",
            format!("arn:aws:s3:::trail-logs/{key}"),
        )
        .with("s3:x-amz-acl", acl.to_string())
        .with("aws:SourceArn", source.to_string());
        Authorization {
            request: &request,
            identity_policies: &[],
            resource_policy: Some(&bucket_policy),
            resource_account: ACCOUNT,
            authority: ResourceAuthority::Optional,
            granted: false,
        }
        .decide()
        .is_allowed()
    };
    let log_key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/28/x.json.gz";
    assert!(put(
        cloudtrail(),
        log_key,
        "bucket-owner-full-control",
        trail
    ));
    assert!(!put(cloudtrail(), log_key, "private", trail));
    assert!(!put(
        cloudtrail(),
        log_key,
        "bucket-owner-full-control",
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/other"
    ));
    assert!(!put(
        cloudtrail(),
        "elsewhere/x.json.gz",
        "bucket-owner-full-control",
        trail
    ));
    assert!(!put(
        bob_elsewhere(),
        log_key,
        "bucket-owner-full-control",
        trail
    ));
    assert!(!put(
        Caller::Service {
            name: "s3.amazonaws.com".into()
        },
        log_key,
        "bucket-owner-full-control",
        trail
    ));

    let key_policy = Policy::parse(
        r#"{
          "Version": "2012-10-17",
          "Id": "Key policy created by CloudTrail",
          "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow CloudTrail to encrypt logs", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:GenerateDataKey*", "Resource": "*",
             "Condition": {"StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": "arn:aws:cloudtrail:*:111122223333:trail/*"},
                           "StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"}}},
            {"Sid": "Allow CloudTrail to describe key", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:DescribeKey", "Resource": "*"},
            {"Sid": "Allow principals in the account to decrypt log files", "Effect": "Allow",
             "Principal": {"AWS": "*"}, "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333"},
                           "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": "arn:aws:cloudtrail:*:111122223333:trail/*"}}}
          ]
        }"#,
        PolicyKind::Resource,
    )
    .expect("the documented key policy parses");
    let kms = |caller: Caller, action: &str, context_trail: Option<&str>, source: Option<&str>| {
        let caller_account = caller.account().map(str::to_string);
        let mut request = RequestContext::new(caller, action, KEY_ARN);
        if let Some(account) = caller_account {
            request.set("kms:CallerAccount", account);
        }
        if let Some(context_trail) = context_trail {
            request.set(
                "kms:EncryptionContext:aws:cloudtrail:arn",
                context_trail.to_string(),
            );
        }
        if let Some(source) = source {
            request.set("aws:SourceArn", source.to_string());
        }
        Authorization {
            request: &request,
            identity_policies: &[],
            resource_policy: Some(&key_policy),
            resource_account: ACCOUNT,
            authority: ResourceAuthority::Required,
            granted: false,
        }
        .decide()
        .is_allowed()
    };
    assert!(kms(
        cloudtrail(),
        "kms:GenerateDataKey",
        Some(trail),
        Some(trail)
    ));
    assert!(!kms(
        cloudtrail(),
        "kms:GenerateDataKey",
        Some("arn:aws:cloudtrail:us-east-1:444455556666:trail/x"),
        Some(trail)
    ));
    assert!(!kms(cloudtrail(), "kms:GenerateDataKey", None, Some(trail)));
    assert!(!kms(cloudtrail(), "kms:Decrypt", Some(trail), Some(trail)));
    assert!(kms(cloudtrail(), "kms:DescribeKey", None, None));
    assert!(kms(alice(), "kms:Decrypt", Some(trail), None));
    assert!(
        !kms(alice(), "kms:Decrypt", None, None),
        "outside CloudTrail's context"
    );
    assert!(
        !kms(bob_elsewhere(), "kms:Decrypt", Some(trail), None),
        "another account"
    );
    assert!(
        !kms(alice(), "kms:GenerateDataKey", Some(trail), None),
        "no IAM policy"
    );
}

fn arb_action() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:*",
        "*",
        "kms:Gen*",
        "s3:PutObject",
        "s3:*",
    ])
    .prop_map(str::to_string)
}

fn arb_principal() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""*""#,
        r#"{"AWS":"111122223333"}"#,
        r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
        r#"{"AWS":"arn:aws:iam::444455556666:root"}"#,
        r#"{"Service":"cloudtrail.amazonaws.com"}"#,
    ])
    .prop_map(str::to_string)
}

fn arb_caller() -> impl Strategy<Value = Caller> {
    prop::sample::select(vec![
        alice(),
        bob_elsewhere(),
        role_session(),
        cloudtrail(),
        Caller::Root {
            account: ACCOUNT.into(),
        },
    ])
}

proptest! {
    /// Whatever else the policies allow, grants included, a Deny statement that applies wins.
    #[test]
    fn an_explicit_deny_always_wins(
        allows in prop::collection::vec((arb_principal(), arb_action()), 1..6),
        deny_in_identity in any::<bool>(),
        caller in arb_caller(),
        granted in any::<bool>(),
        required in any::<bool>(),
    ) {
        let mut statements: Vec<String> = allows
            .iter()
            .map(|(principal, action)| format!(
                r#"{{"Effect":"Allow","Principal":{principal},"Action":"{action}","Resource":"*"}}"#
            ))
            .collect();
        let deny = r#"{"Sid":"Stop","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#;
        if !deny_in_identity {
            statements.push(deny.to_string());
        }
        let resource_policy = resource(&format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(",")));
        let identity_policy = identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
                {"Sid":"Stop","Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
        );
        let allow_everything = identity(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#);
        let identities: Vec<&Policy> = if deny_in_identity { vec![&identity_policy] } else { vec![&allow_everything] };
        let applies_identity = matches!(caller, Caller::User { .. } | Caller::AssumedRole { .. });
        let request = RequestContext::new(caller, "kms:Decrypt", KEY_ARN);
        let decision = Authorization {
            request: &request,
            identity_policies: if applies_identity { &identities } else { &[] },
            resource_policy: Some(&resource_policy),
            resource_account: ACCOUNT,
            authority: if required { ResourceAuthority::Required } else { ResourceAuthority::Optional },
            granted,
        }
        .decide();
        if deny_in_identity && !applies_identity {
            // Root and services carry no identity policies: only the resource side speaks.
            prop_assert!(!matches!(decision, Decision::ExplicitDeny(_)));
        } else {
            prop_assert_eq!(decision, Decision::ExplicitDeny("Stop".into()));
        }
    }

    /// Wildcard matching agrees with a straightforward recursive definition.
    #[test]
    fn wildcard_matching_agrees_with_its_definition(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
        fn reference(p: &[u8], t: &[u8]) -> bool {
            match (p.first(), t.first()) {
                (None, None) => true,
                (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
                (Some(b'?'), Some(_)) => reference(&p[1..], &t[1..]),
                (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
                _ => false,
            }
        }
        prop_assert_eq!(wildcard_match(&pattern, &text, false), reference(pattern.as_bytes(), text.as_bytes()));
    }
}

#[test]
fn policies_say_whether_they_read_the_request_keys() {
    let plain = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"kms:*","Resource":"*"},
        {"Effect":"Deny","Action":"kms:ScheduleKeyDeletion","Resource":"arn:aws:kms:*:*:key/*"}]}"#;
    assert!(!identity(plain).reads_request_keys());
    let with_condition = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"kms:*","Resource":"*"},
        {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*",
         "Condition":{"StringNotEquals":{"kms:EncryptionContext:purpose":"logs"}}}]}"#;
    assert!(identity(with_condition).reads_request_keys());
    let with_variable = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/${aws:username}/*"}]}"#;
    assert!(identity(with_variable).reads_request_keys());
    // In a 2008-10-17 document `${...}` is literal text, read from no key.
    let literal = r#"{"Version":"2008-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/${aws:username}/*"}]}"#;
    assert!(!identity(literal).reads_request_keys());
    let key_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    assert!(!resource(&key_policy).reads_request_keys());
}

proptest! {
    /// A policy that reads no keys decides a request the same with its keys or without them.
    #[test]
    fn a_policy_reading_no_keys_decides_the_same_without_them(
        action in prop::sample::select(vec!["kms:Decrypt", "kms:Encrypt", "kms:ScheduleKeyDeletion", "s3:GetObject"]),
        allowed in prop::sample::select(vec!["kms:*", "kms:Decrypt", "kms:*Key*", "s3:*"]),
        denied in prop::sample::select(vec!["kms:ScheduleKeyDeletion", "kms:Encrypt", "s3:Put*"]),
        resource_pattern in prop::sample::select(vec!["*", "arn:aws:kms:*:111122223333:key/*", "arn:aws:s3:::home/*"]),
        caller in prop::sample::select(vec![0usize, 1, 2, 3]),
    ) {
        let policy = identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"{allowed}","Resource":"{resource_pattern}"}},
                {{"Effect":"Deny","Action":"{denied}","Resource":"*"}}]}}"#
        ));
        prop_assert!(!policy.reads_request_keys());
        let caller = [alice(), bob_elsewhere(), role_session(), cloudtrail()][caller].clone();
        let mut full = RequestContext::new(caller.clone(), action, KEY_ARN);
        full.set("aws:SourceIp", "192.0.2.1");
        full.set("aws:SecureTransport", "false");
        full.set_values("kms:EncryptionContextKeys", vec!["purpose".into()]);
        let bare = RequestContext::without_keys(caller, action, KEY_ARN);
        prop_assert_eq!(policy.evaluate(&full), policy.evaluate(&bare));
    }
}
