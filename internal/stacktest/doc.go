// Package stacktest runs the services of docker/compose.yml without a Docker engine, as closely
// as a chroot allows, so that every `make test` proves that `docker compose up` starts the stack
// and that it supervises calls (TestStack).
//
// Nothing is copied from the Docker files by hand: the services come from `docker-compose
// config` (Debian's docker-compose 1.29, which interpolates the file the way Compose does), the
// images from their Dockerfiles' instructions:
//
//   - an image built FROM debian:sid-slim (docker/asterisk.Dockerfile) is built by running its
//     RUN and COPY instructions, with compose's build args, in an overlay on the Debian sid root
//     that scripts/asterisk-root.sh provisions for the tests (after making that root look like
//     the debian:sid-slim image: deb822 sources, no mmdebstrap apt options). The result, the
//     overlay's upper layer, is cached under ~/.cache/earpiece/stacktest, keyed by the
//     Dockerfile, the build args, the files it copies and the root;
//   - an image built FROM gcr.io/distroless/static (docker/earpiece.Dockerfile) gets the binary
//     its build stage produces, built by that stage's own RUN commands with this machine's Go
//     (the golang image's stand-in) in a copy of the build context filtered by its
//     .dockerignore, on an otherwise empty root file system;
//   - redis:7 is this machine's redis-server (Debian 12's Redis 7), run as the image runs it.
//
// A container is a chroot into an overlay of its image, with compose's volumes (bind mounts),
// tmpfs and read_only, its image's user, entrypoint, command and environment plus compose's,
// and exactly its capabilities: Docker's default set, less cap_drop, plus cap_add, as the
// bounding, permitted and effective sets, an empty inheritable and ambient set, and
// no-new-privileges when security_opt says so (capsh applies them). Health checks run the same
// way inside the container, more often than compose's interval, and depends_on conditions are
// waited for. Service names resolve to 127.0.0.1 through each container's /etc/hosts.
//
// All of it runs in private network, mount and PID namespaces, the network one holding only a
// loopback interface (the test re-executes itself under `unshare`), so the fixed ports compose
// publishes cannot collide with anything on the machine, no packet can leave it, and every
// process and mount disappears with the run. Docker's other isolation and features (a PID and
// UTS namespace per container, cgroups, seccomp, init, restart policies, the container's working
// directory) are not reproduced. EARPIECE_TEST_KEEP=1 keeps a failed run's files (in /tmp).
//
// It needs root, unshare, nsenter, mount, capsh, ip, redis-server, docker-compose and Go;
// scripts/test-deps.sh installs the Debian packages.
package stacktest
