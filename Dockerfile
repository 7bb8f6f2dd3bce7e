# syntax=docker/dockerfile:1
# flowbus in a container: the coordinator, the built-in plugins and the SDK.
#
#   docker build -t flowbus .
#   docker run --rm flowbus --help
#   docker compose up          # see docker-compose.yml: a broker and a workflow
#
# Stage 1 builds and installs into /usr/local under /stage; stage 2 copies that
# onto a slim image with only the runtime libraries.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libpaho-mqtt-dev libssl-dev libyaml-dev libjansson-dev libcurl4-openssl-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The tests need a broker and Python; they run in CI (scripts/test), not here.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build --parallel "$(nproc)" \
 && DESTDIR=/stage cmake --install /build

FROM debian:12-slim
# Runtime libraries of flowbus and its SDK; mosquitto so that `flowbus run`
# without --broker can start a private broker; mosquitto-clients and
# python3-paho-mqtt for the shell and Python plugins.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpaho-mqtt1.3 libssl3 libyaml-0-2 libjansson4 libcurl4 libmicrohttpd12 ca-certificates \
      mosquitto mosquitto-clients python3 python3-paho-mqtt \
 && rm -rf /var/lib/apt/lists/*
# bin/flowbus, libexec/flowbus/flowbus-*, lib/libflowbus.so*, include/flowbus/,
# lib/pkgconfig/flowbus.pc
COPY --from=build /stage/usr/local/ /usr/local/
RUN ldconfig && flowbus --version
# Workflows run in the working directory: relative paths in them (report files,
# watched files) land here.
WORKDIR /work
ENTRYPOINT ["flowbus"]
CMD ["--help"]
