// `geokv backup DIR` and `geokv restore DIR`: a running cluster's data, shard by shard,
// into a directory, and back into a new cluster (docs/operations.md, "Backups").
//
// A backup directory holds shard-<n>.snap per strong shard (Engine::SnapshotOf's bytes, as
// of a linearizable read at that shard's leader), eventual.dump (the eventual keys the
// answering node held: key and encoded CRDT state, each as crdt::Encoder bytes, until the
// end of the file) and, written last, manifest: JSON naming the shard count, the map
// version, the policy, when the backup started and finished, and every file's size and
// CRC-32C. A directory without a manifest is not a backup.
#ifndef GEOKV_TOOLS_GEOKV_BACKUP_H_
#define GEOKV_TOOLS_GEOKV_BACKUP_H_

#include <string>

#include "core/server/client.h"

namespace geokv::tools {

// Takes a backup of the cluster `client` reaches into `dir` (created; refused when it
// already holds a manifest). Progress on stderr, the summary on stdout (JSON with `json`).
// Returns the process exit code: 0 when the manifest was written, 2 otherwise.
int RunBackup(Client& client, const std::string& dir, bool json);

// Restores the backup in `dir` into the new cluster `client` reaches: checks every file
// against the manifest, refuses a cluster with another shard count or policy, or one that
// already holds a key in a restored shard or an eventual key; then writes every strong row
// with put (`threads` at once) and re-issues every eventual key's operations. Returns the
// process exit code: 0 when every key was restored, 2 otherwise (naming what was not).
int RunRestore(Client& client, const std::string& dir, int threads, bool json);

}  // namespace geokv::tools

#endif  // GEOKV_TOOLS_GEOKV_BACKUP_H_
