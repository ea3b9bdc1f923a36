# Build the operator image: docker build -t <registry>/alicloud-rollouts:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin alicloud-rollouts

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/alicloud-rollouts /usr/local/bin/alicloud-rollouts
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/alicloud-rollouts"]
