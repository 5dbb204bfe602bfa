#!/bin/sh
# Map the bucket to database "solar", retention policy "autogen", so that the
# InfluxQL dashboard (and InfluxQL queries) work on InfluxDB 2 too. Runs once,
# right after the initial setup (the influxdb image runs /docker-entrypoint-initdb.d).
set -eu
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen \
  --bucket-id "${bucket_id}" --default
