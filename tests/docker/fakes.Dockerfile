# The fake push providers (tests/e2e/fakes: APNs, FCM v1 and Web Push) in
# a container of their own, reached by the others as `fakes`, with a JSON
# control server on 8080 (tests/docker/fakes_server.py says it all).
#
#   docker build --network host -f tests/docker/fakes.Dockerfile \
#       -t chatmail-push-fakes:test .                  # from the repo root
#   python3 tests/docker/fakes_server.py --make-secrets DIR    # on the host
#   docker run -d --network NET --network-alias fakes \
#       -v DIR:/secrets:ro chatmail-push-fakes:test
#
# Smoke check from another container on NET:
#   docker run --rm --network NET -v DIR:/secrets:ro \
#       chatmail-push-fakes:test python3 /fakes/check_fakes.py

FROM debian:12
# openssl: only for --make-secrets inside the image (pki.py's legacy .p12).
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	python3 python3-h2 python3-cryptography openssl \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 991 fakes \
 && useradd --system --uid 991 --gid fakes --no-create-home \
	--home-dir /nonexistent --shell /usr/sbin/nologin fakes
COPY tests/e2e/fakes/fake_apns.py tests/e2e/fakes/fake_fcm.py \
     tests/e2e/fakes/fake_webpush.py tests/e2e/fakes/https_fake.py \
     tests/e2e/fakes/fake_wait.py tests/e2e/fakes/pki.py \
     tests/e2e/fakes/tls_client.py \
     tests/docker/fakes_server.py tests/docker/check_fakes.py \
     tests/data/openpgp/keyring-v6.asc /fakes/
RUN python3 -m compileall -q /fakes
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER fakes
EXPOSE 8080 8443 8444 8445
HEALTHCHECK --interval=2s --timeout=3s --start-period=20s --retries=3 \
	CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["python3", "/fakes/fakes_server.py", "--secrets", "/secrets", "--host-name", "fakes"]
