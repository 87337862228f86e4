#!/usr/bin/env bash
# A private CA and one node certificate (scheduler, workers and clients) for Dask TLS.
#   deploy/tls/make-certs.sh DIR [DAYS]   -> DIR/ca.pem DIR/node.pem DIR/node-key.pem
# Keep DIR out of version control; on Kubernetes load it as the secret chromestore-tls:
#   kubectl create secret generic chromestore-tls --from-file=DIR
set -euo pipefail
out=${1:?usage: make-certs.sh DIR [DAYS]}
days=${2:-365}
mkdir -p "$out"
umask 077
openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=chromestore-dask-ca" \
  -keyout "$out/ca-key.pem" -out "$out/ca.pem" 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=chromestore-dask" \
  -keyout "$out/node-key.pem" -out "$out/node.csr" 2>/dev/null
printf 'subjectAltName=DNS:scheduler,DNS:chromestore-scheduler,DNS:localhost,IP:127.0.0.1\n' \
  >"$out/san.ext"
openssl x509 -req -in "$out/node.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
  -CAcreateserial -days "$days" -extfile "$out/san.ext" -out "$out/node.pem" 2>/dev/null
rm -f "$out/node.csr" "$out/san.ext" "$out/ca.srl"
chmod 644 "$out/ca.pem" "$out/node.pem"
# Containers run as uid 1000 and must read the key.
chmod 644 "$out/node-key.pem"
echo "wrote $out/ca.pem $out/node.pem $out/node-key.pem"
