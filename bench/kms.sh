#!/usr/bin/env bash
# KMS benchmark: GenerateDataKey and Decrypt (with an encryption context), Sign and Verify with
# RSA-2048 and P-256 keys — SigV4 verified, every call journaled — against the null-server
# ceiling and moto_server, in one run.
#   DURATION=10 CONNECTIONS=64 bench/kms.sh
exec "$(dirname "$0")/run.sh" kms:GenerateDataKey kms:Decrypt \
  "kms:Sign(RSA_2048)" "kms:Verify(RSA_2048)" "kms:Sign(ECC_NIST_P256)" "kms:Verify(ECC_NIST_P256)"
