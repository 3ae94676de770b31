//! The crypto core of KMS in isolation: sealing and opening a 32-byte data key with a
//! CloudTrail-shaped encryption context, and the context encoding.

use std::collections::BTreeMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keytrail_kms::envelope::{self, BlobHeader, MaterialKey};

fn inputs() -> (MaterialKey, BlobHeader<'static>, BTreeMap<String, String>) {
    let key = MaterialKey::new(&envelope::random(32).expect("random")).expect("key");
    let header = BlobHeader {
        region: "us-east-1",
        account_id: "111122223333",
        key_id: [7; 16],
        kind: envelope::BlobKind::SingleRegion,
        material_id: [9; 32],
    };
    let context = [
        (
            "aws:cloudtrail:arn".to_string(),
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/management".to_string(),
        ),
        (
            "aws:s3:arn".to_string(),
            "arn:aws:s3:::logs/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/28/f.json.gz"
                .to_string(),
        ),
    ]
    .into_iter()
    .collect();
    (key, header, context)
}

fn bench(c: &mut Criterion) {
    let (key, header, context) = inputs();
    let data_key = envelope::random(32).expect("random");
    let blob = envelope::seal(&key, &header, &context, &data_key).expect("seal");
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal 32-byte data key", |b| {
        b.iter(|| envelope::seal(&key, &header, &context, &data_key).expect("seal"))
    });
    group.bench_function("parse + open 32-byte data key", |b| {
        b.iter(|| {
            let parsed = envelope::parse(&blob).expect("parse");
            envelope::open(&key, &parsed, &context).expect("open")
        })
    });
    group.bench_function("encode context", |b| {
        b.iter(|| envelope::encode_context(&context))
    });
    group.bench_function("random 32 bytes", |b| {
        b.iter(|| envelope::random(32).expect("random"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
