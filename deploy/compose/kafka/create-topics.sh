#!/bin/sh
# Creates Anchor's Kafka topics for docker-compose (the services run with <P>_KAFKA__CREATE_TOPICS=false).
# Runs once in the `kafka-init` service, from the broker's own image, after the broker is healthy.
#
# Safe to run again: a missing topic is created, an existing one gets its retention set to the value below; a
# topic whose partition count differs is reported and the script fails (partitions are only ever added by hand,
# with kafka-topics.sh --alter, because adding them moves keys to other partitions).
#
# The list mirrors shared/shared/topics.py TOPICS; tests/ops/test_compose.py runs this script against a stub
# kafka-topics.sh and compares what it creates with TOPICS.
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
BIN="${KAFKA_BIN:-/opt/kafka/bin}"
REPLICATION_FACTOR="${TOPIC_REPLICATION_FACTOR:-1}"
WAIT_SECONDS="${KAFKA_WAIT_SECONDS:-60}"

# name                      partitions  retention.ms
TOPICS='
koc.posts.v1                6           1209600000
koc.reactions.v1            6           1209600000
koc.posts.classified.v1     6           1209600000
koc.alerts.v1               3           2419200000
koc.deadletter.v1           3           2419200000
koc.members.v1              3           2419200000
'

waited=0
until "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; do
  if [ "$waited" -ge "$WAIT_SECONDS" ]; then
    echo "kafka at $BOOTSTRAP did not answer within ${WAIT_SECONDS}s" >&2
    exit 1
  fi
  sleep 2
  waited=$((waited + 2))
done

failed=0
while read -r name partitions retention; do
  [ -n "$name" ] || continue
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor "$REPLICATION_FACTOR" --config "retention.ms=$retention"
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics --entity-name "$name" \
    --add-config "retention.ms=$retention"
  actual=$("$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic "$name" \
    | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
  if [ "$actual" != "$partitions" ]; then
    echo "topic $name has ${actual:-no} partitions, expected $partitions" >&2
    failed=1
  else
    echo "topic $name: $partitions partitions, retention.ms=$retention"
  fi
done <<EOF
$TOPICS
EOF

exit "$failed"
