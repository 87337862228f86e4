#!/usr/bin/env bash
# A private CA and one certificate per Dask role (scheduler, worker, client) for Dask TLS.
#   deploy/tls/make-certs.sh DIR [DAYS]
#     DIR/ca/ca-key.pem   the CA's key: signs certificates, stays here, never mounted anywhere
#     DIR/ca/ca.pem       the CA certificate
#     DIR/dask/           what containers mount (/etc/dask/tls) and the Kubernetes secret holds:
#                         ca.pem, scheduler.pem, worker.pem, client.pem and their *-key.pem
# Private keys are mode 0600 (owner only): run this as the user the containers run as
# (compose: CHROMESTORE_UID/CHROMESTORE_GID, default 1000). Keep DIR out of version control.
# On Kubernetes: kubectl create secret generic chromestore-tls --from-file=DIR/dask
# An existing DIR/ca or DIR/dask is never overwritten.
set -euo pipefail
out=${1:?usage: make-certs.sh DIR [DAYS]}
days=${2:-365}
for sub in ca dask; do
  if [ -e "$out/$sub" ]; then
    echo "make-certs.sh: $out/$sub already exists; nothing was changed (remove it or choose another DIR)" >&2
    exit 1
  fi
done
umask 077
mkdir -p "$out/ca" "$out/dask"
openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=chromestore-dask-ca" \
  -keyout "$out/ca/ca-key.pem" -out "$out/ca/ca.pem" 2>/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
san_scheduler="DNS:scheduler,DNS:chromestore-scheduler,DNS:localhost,IP:127.0.0.1"
for role in scheduler worker client; do
  openssl req -newkey rsa:3072 -nodes -subj "/CN=chromestore-dask-$role" \
    -keyout "$out/dask/$role-key.pem" -out "$tmp/$role.csr" 2>/dev/null
  case $role in  # scheduler and workers accept and open connections, a client only opens them
    scheduler) printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
                 "$san_scheduler" >"$tmp/$role.ext" ;;
    worker) printf 'extendedKeyUsage=serverAuth,clientAuth\n' >"$tmp/$role.ext" ;;
    client) printf 'extendedKeyUsage=clientAuth\n' >"$tmp/$role.ext" ;;
  esac
  openssl x509 -req -in "$tmp/$role.csr" -CA "$out/ca/ca.pem" -CAkey "$out/ca/ca-key.pem" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -extfile "$tmp/$role.ext" \
    -out "$out/dask/$role.pem" 2>/dev/null
done
cp "$out/ca/ca.pem" "$out/dask/ca.pem"
chmod 700 "$out/ca"
chmod 755 "$out/dask"
chmod 600 "$out/ca/ca-key.pem" "$out"/dask/*-key.pem
chmod 644 "$out/ca/ca.pem" "$out/dask/ca.pem" "$out/dask/scheduler.pem" "$out/dask/worker.pem" \
  "$out/dask/client.pem"
echo "wrote $out/dask (ca.pem and a certificate and key per role: scheduler, worker, client);" \
  "the CA key is $out/ca/ca-key.pem (keep it there)"
