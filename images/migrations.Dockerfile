# A release's migrations image: data only, exactly the golang-migrate files of the app's
# backend/migrations at the built ref under /migrations (clipper-release copies them out with
# `docker create` + `docker cp`; it never runs this image). Seed files in the same folder
# (seed.sql, seed_*.sql) do not match NNNNNN_*.up.sql / NNNNNN_*.down.sql and stay out.
# Build context: the app's backend/migrations directory.
FROM scratch
COPY [0-9][0-9][0-9][0-9][0-9][0-9]_*.up.sql [0-9][0-9][0-9][0-9][0-9][0-9]_*.down.sql /migrations/
