#!/usr/bin/env bash
# KMS benchmark: GenerateDataKey and Decrypt (with an encryption context, SigV4 verified, every
# call journaled) against the null-server ceiling and moto_server, in one run.
#   DURATION=10 CONNECTIONS=64 bench/kms.sh
exec "$(dirname "$0")/run.sh" kms:GenerateDataKey kms:Decrypt
