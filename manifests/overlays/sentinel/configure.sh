#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf into $CONFIG_DIR (an emptyDir), run by
# the init container of every vpcnet-redis-ha pod before redis-server and redis-sentinel
# start. The primary is whoever the sentinels name; only when no sentinel answers (the
# very first start of the group) does pod 0 start as primary and the others follow it.
# Environment: ORDINAL, SELF_HOST, PRIMARY_HOST (pod 0's host), SENTINEL_HOSTS (space-
# separated), REDIS_PORT, SENTINEL_PORT, SERVICE, QUORUM, REPLICA_USER/REPLICA_PASSWORD
# (the ACL user replicas sync with), SENTINEL_USER/SENTINEL_PASSWORD (the ACL user the
# sentinels manage Redis with), BASE_CONF (the shared redis.conf to include), BIND
# (optional: the addresses to listen on; default all, as a host-network pod needs).
set -eu
: "${CONFIG_DIR:?}" "${SELF_HOST:?}" "${PRIMARY_HOST:?}" "${SENTINEL_HOSTS:?}" "${ORDINAL:?}"
REDIS_PORT=${REDIS_PORT:-6379}
SENTINEL_PORT=${SENTINEL_PORT:-26379}
SERVICE=${SERVICE:-vpcnet}
QUORUM=${QUORUM:-2}

primary=""
for host in $SENTINEL_HOSTS; do
  [ "$host" = "$SELF_HOST" ] && continue
  answer=$(redis-cli -h "$host" -p "$SENTINEL_PORT" --raw \
           sentinel get-master-addr-by-name "$SERVICE" 2>/dev/null | head -n 1) || answer=""
  case "$answer" in
    ""|ERR*|*"Could not connect"*) ;;
    *) primary=$answer; break ;;
  esac
done
if [ -z "$primary" ]; then
  primary=$PRIMARY_HOST
fi

umask 077
{
  echo "include $BASE_CONF"
  echo "port $REDIS_PORT"
  if [ -n "${BIND:-}" ]; then echo "bind $BIND"; fi
  echo "replica-announce-ip $SELF_HOST"
  echo "masteruser $REPLICA_USER"
  echo "masterauth $REPLICA_PASSWORD"
  if [ "$primary" != "$SELF_HOST" ]; then
    echo "replicaof $primary $REDIS_PORT"
  fi
} > "$CONFIG_DIR/redis.conf"
{
  echo "port $SENTINEL_PORT"
  if [ -n "${BIND:-}" ]; then echo "bind $BIND"; fi
  echo "dir $CONFIG_DIR"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $SELF_HOST"
  echo "sentinel monitor $SERVICE $primary $REDIS_PORT $QUORUM"
  echo "sentinel auth-user $SERVICE $SENTINEL_USER"
  echo "sentinel auth-pass $SERVICE $SENTINEL_PASSWORD"
  echo "sentinel down-after-milliseconds $SERVICE ${DOWN_AFTER_MS:-5000}"
  echo "sentinel failover-timeout $SERVICE ${FAILOVER_TIMEOUT_MS:-60000}"
  echo "sentinel parallel-syncs $SERVICE 1"
} > "$CONFIG_DIR/sentinel.conf"
echo "vpcnet-redis-ha-$ORDINAL: primary is $primary"
