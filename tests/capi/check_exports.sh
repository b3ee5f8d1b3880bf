#!/usr/bin/env bash
# Fails when the shared library exports a dynamic symbol that is not geokv_*, or misses one
# of the entry points geokv.h declares.
set -euo pipefail
lib=$1
exported=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u)
bad=$(grep -v '^geokv_' <<<"$exported" || true)
if [[ -n $bad ]]; then
  echo "symbols exported besides geokv_*:"; echo "$bad"; exit 1
fi
for sym in geokv_version geokv_open geokv_close geokv_put geokv_get geokv_delete geokv_free \
           geokv_errmsg geokv_iter_open geokv_iter_next geokv_iter_close \
           geokv_connect geokv_list_free geokv_cas geokv_add geokv_set_add geokv_set_remove \
           geokv_set_contains geokv_set_members geokv_policy_set geokv_policy_remove \
           geokv_policy_list geokv_status geokv_mv_get geokv_mv_put geokv_mv_delete \
           geokv_log_set_level geokv_log_level geokv_log_set_callback geokv_repair \
           geokv_node_set_state; do
  grep -qx "$sym" <<<"$exported" || { echo "missing export: $sym"; exit 1; }
done
echo "exports ok: $(wc -l <<<"$exported") geokv_* symbols, nothing else"
