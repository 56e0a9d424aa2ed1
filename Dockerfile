# The push stack in containers: two images from one build, for the
# two-host topology of compose.yaml (docs/operator-relay.md#containers).
#
#   docker build --target relay   -t chatmail-push-relay .    # Dovecot, metadata-dictd, notifierd
#   docker build --target central -t chatmail-push-central .  # proxyd
#
# The build stage: scripts/install-deps.sh --build (the Debian packages
# `make install` needs) and `make install`. The runtime stages copy the
# installed files onto plain Debian 12 with only the shared libraries
# they need: no compiler, no test data, no secrets (those are mounted at
# run time, see compose.yaml). `make docker-test` builds both images from
# this file as it is and runs compose.yaml's topology against fake
# providers (tests/docker/).

FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" install PREFIX=/usr/local DESTDIR=/stage

# What the three daemons link against (docs/operator-relay.md#install-debian-12).
FROM debian:12 AS runtime
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	ca-certificates libsqlite3-0 libevent-2.1-7 libevent-pthreads-2.1-7 \
	libmicrohttpd12 libcurl4 libssl3 libnghttp2-14 libjansson4 zlib1g \
	libhiredis0.14 \
 && rm -rf /var/lib/apt/lists/*

# The central host: proxyd alone, as a fixed unprivileged uid (990) so
# that secret files mounted from the host can be given to it.
FROM runtime AS central
COPY --from=build /stage/usr/local/bin/proxyd /usr/local/bin/
RUN groupadd --system --gid 990 chatmail-proxyd \
 && useradd --system --uid 990 --gid chatmail-proxyd --no-create-home \
	--home-dir /var/lib/chatmail-proxyd --shell /usr/sbin/nologin chatmail-proxyd \
 && install -d -o chatmail-proxyd -g chatmail-proxyd -m 0700 /var/lib/chatmail-proxyd
USER chatmail-proxyd
EXPOSE 9000 9001
# GET / answers 200 "Hello, world!"; bash's /dev/tcp, as the image has no
# HTTP client.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
	CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9000 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["/usr/local/bin/proxyd"]
CMD ["--openpgp-keyring-path", "/run/secrets/keyring.asc", \
     "--host", "0.0.0.0", "--port", "9000", \
     "--db", "/var/lib/chatmail-proxyd/notifiers.db", \
     "--metrics", "0.0.0.0:9001"]

# The relay host: Dovecot with the project's drop-in and push.lua (where
# make install put them), metadata-dictd and notifierd. The self-signed
# key Debian's packages generate on install is removed: a key baked into
# an image is the same in every container made from it; mount your own
# certificate and key for IMAPS. compose.yaml runs
# each in its own container from this image, sharing the sockets and the
# database through volumes; the directories are made here with the owners
# and modes the systemd units give them, and a named volume starts as a
# copy of them.
FROM runtime AS relay
# Dovecot's packages start their service on install; there is no init here.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d \
 && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	dovecot-core dovecot-imapd dovecot-lmtpd \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 && rm -f /etc/ssl/private/ssl-cert-snakeoil.key \
	/etc/ssl/certs/ssl-cert-snakeoil.pem /etc/dovecot/private/dovecot.key \
	/etc/dovecot/private/dovecot.pem
COPY --from=build /stage/usr/local/bin/metadata-dictd /stage/usr/local/bin/notifierd \
	/usr/local/bin/
COPY --from=build /stage/etc/dovecot/ /etc/dovecot/
RUN groupadd --system --gid 5000 vmail \
 && useradd --system --uid 5000 --gid vmail --home-dir /home/vmail \
	--create-home --shell /usr/sbin/nologin vmail \
 && groupadd --system --gid 991 chatmail-push \
 && useradd --system --uid 991 --gid chatmail-push --no-create-home \
	--home-dir /var/lib/chatmail-push --shell /usr/sbin/nologin chatmail-push \
 && install -d -o chatmail-push -g chatmail-push -m 0755 /run/metadata-dictd \
 && install -d -o chatmail-push -g chatmail-push -m 0750 /run/notifierd \
	/var/lib/chatmail-push
EXPOSE 143 993 24
# Dovecot's greeting on 143. The image also runs metadata-dictd and
# notifierd (compose.yaml gives them process checks of their own).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
	CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/143 && head -c 4 <&3 | grep -q '^\\* OK'"]
CMD ["dovecot", "-F"]
