#!/bin/sh
# A small stand-in for the official mysql/mariadb images' entrypoint, for the
# local images built from the Debian archive: on an empty datadir it
# initialises the server and sets the root password (root@localhost and
# root@'%'), then it runs the server. Reads MYSQL_ROOT_PASSWORD or
# MYSQL_ROOT_PASSWORD_FILE (MARIADB_* too).
set -eu

datadir=/var/lib/mysql
die() { echo "entrypoint: $*" >&2; exit 1; }

# Flags only: the image's server, as the official entrypoints do.
if [ "${1#-}" != "$1" ]; then
    if command -v mariadbd >/dev/null; then set -- mariadbd "$@"; else set -- mysqld "$@"; fi
fi
case "$1" in mysqld|mariadbd) ;; *) exec "$@" ;; esac
# As the official entrypoints: the datadir the server is given.
for arg in "$@"; do
    case "$arg" in --datadir=*) datadir="${arg#--datadir=}" ;; esac
done

password="${MYSQL_ROOT_PASSWORD:-${MARIADB_ROOT_PASSWORD:-}}"
file="${MYSQL_ROOT_PASSWORD_FILE:-${MARIADB_ROOT_PASSWORD_FILE:-}}"
if [ -z "$password" ] && [ -n "$file" ]; then password="$(cat "$file")"; fi

if [ ! -d "$datadir/mysql" ]; then
    [ -n "$password" ] || die "the datadir is empty and no root password is set (MYSQL_ROOT_PASSWORD[_FILE])"
    echo "entrypoint: initialising an empty datadir" >&2
    if command -v mariadb-install-db >/dev/null; then
        mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
            --skip-test-db --skip-name-resolve >/dev/null
        client=mariadb
    else
        "$@" --initialize-insecure --datadir="$datadir"
        client=mysql
    fi
    sock=/tmp/entrypoint-init.sock
    "$@" --skip-networking --socket="$sock" --skip-log-bin &
    pid=$!
    i=0
    until "$client" --no-defaults -uroot -S "$sock" -e 'SELECT 1' >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 600 ] || die "the temporary server did not start"
        kill -0 "$pid" 2>/dev/null || die "the temporary server exited"
        sleep 0.1
    done
    esc=$(printf '%s' "$password" | sed "s/\\\\/\\\\\\\\/g; s/'/''/g")
    "$client" --no-defaults -uroot -S "$sock" <<SQL
SET @@SESSION.SQL_LOG_BIN = 0;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$esc';
CREATE USER 'root'@'%' IDENTIFIED BY '$esc';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
SQL
    # No anonymous or host-specific root accounts, as in the official images.
    "$client" --no-defaults -uroot -p"$esc" -S "$sock" -N -e \
        "SELECT CONCAT('DROP USER ''', User, '''@''', Host, ''';') FROM mysql.user
         WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '%'))" 2>/dev/null \
        | "$client" --no-defaults -uroot -p"$esc" -S "$sock" 2>/dev/null
    kill "$pid"
    wait "$pid" || true
    echo "entrypoint: datadir initialised" >&2
fi
exec "$@"
