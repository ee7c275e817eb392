# .dockerignore as build.Dockerfile.dockerignore (podkit finds it next to the
# Dockerfile, buildah 1.28 is given it with --ignorefile): a directory excluded
# and a subtree of it taken back (its parents are made), ** with and without a
# directory part, the last matching line winning
FROM busybox
COPY . /ctx/
