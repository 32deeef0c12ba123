#!/usr/bin/env bash
# agentauth security console: LISTENs on agentauth_alerts and prints every
# alert as it arrives, one line each, until interrupted (Ctrl-C).
#
#   scripts/console.sh                      # the demo server (make demo)
#   scripts/console.sh -h HOST -p PORT -U ROLE DBNAME   # any server: psql options
#   scripts/console.sh --json ...           # the raw JSON payloads instead
#
# Run it in a second terminal next to the demo.  Any role that can connect
# may LISTEN: the payload carries no patient and no free text (the details
# are in agentauth.alerts, for auditors).  psql delivers notifications only
# when it runs a command (\watch does not deliver them), so the console
# sends an empty query every second.
set -euo pipefail
cd "$(dirname "$0")/.."

json=0
if [ "${1:-}" = "--json" ]; then
    json=1
    shift
fi
if [ $# -eq 0 ]; then
    set -- -h "$(pwd)/demo" -p "${DEMO_PORT:-54329}" -U postgres postgres
fi

# one payload field (a string, a number or null) from the JSON text
field() {
    sed -n "s/.*\"$1\" : \(\"\([^\"]*\)\"\|\([^,}]*\)\).*/\2\3/p" <<<"$2"
}

format() {
    local line payload
    while IFS= read -r line; do
        case $line in
            'Asynchronous notification "agentauth_alerts" with payload "'*)
                payload=${line#*with payload \"}
                payload=${payload%\" received from server process*}
                if [ $json -eq 1 ]; then
                    printf '%s\n' "$payload"
                    continue
                fi
                local event rule count window who action taken at
                event=$(field event "$payload")
                rule=$(field rule "$payload")
                count=$(field count "$payload")
                window=$(field window "$payload")
                who=$(field principal_name "$payload")
                [ "$who" = "null" ] && who=""
                taken=$(field action_taken "$payload")
                at=$(field raised_at "$payload")
                at=${at#*T}
                at=${at%%.*}
                if [ "$rule" = "null" ]; then
                    rule="always-on"
                else
                    rule="rule $rule"
                fi
                if [ "$window" != "null" ]; then
                    count="$count in ${window}s"
                fi
                printf '%s  ALERT #%s  %-26s %-12s principal=%s role=%s  count=%s  -> %s\n' \
                    "$at" "$(field alert "$payload")" "$event" "($rule)" "${who:--}" \
                    "$(field role "$payload")" "$count" "$taken"
                ;;
        esac
    done
}

printf 'agentauth console: listening on agentauth_alerts (Ctrl-C to stop)\n'
{
    printf 'LISTEN agentauth_alerts;\n'
    while sleep 1; do
        printf 'SELECT WHERE false;\n'
    done
} | psql -X -q -A -t -v ON_ERROR_STOP=1 "$@" 2>&1 | format
