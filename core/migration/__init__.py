"""Migration between storage backends: move the values of selected secrets from one backend
instance to another, as a resumable job. `planner` plans, starts and reads jobs; `runner` claims
one and runs it as a `run.MigrationRun`; `service` puts the two behind one facade; the values
are in `core.domain.migration`.

Starting a migration (an admin of the selected scope, or of global) records a job and one item
per secret (version 0, the secret itself) and per version to move: every version still holding
a value with `all_versions`, else the current and pending ones (older versions then stay where
they are, readable there: their rows keep pointing at the source). Running it first reads every
value to move and refuses the whole job, before anything moves, if one does not fit the target
(size limit, or a name the service's name rules no longer accept). Then, secret by secret:

1. each version is put to the target (the item is marked `writing` first), read back and
   compared with the version's keyed checksum, and its target locator recorded (`copied`);
2. one transaction points every copied version at its copy and the secret at the target, with
   its audit event, only if the secret's revision has not moved since step 1 began — a version
   written (or disabled, destroyed…) meanwhile makes it start the secret again, copying what is
   new, so no write is lost;
3. only then, and only if asked, the source copies are destroyed.

Resuming (after a crash, a killed process, or a backend outage) takes the job again once its
lease has run out: a `copied` item is read back and verified rather than copied again; a
switched secret is never copied again; an item left `writing` (the process died between the put
and recording its locator) may have left a copy nobody points at, so if no version of that
secret lives on the target yet, the target's storage for the secret is purged and its copies
made afresh; if it holds some (or an earlier migration away from it kept its copies there),
the item is put again and the possible stray copy is listed in the report (`stray_copies`).

The job acts for the admin who started it (its audit events name them); no value ever leaves
the service or reaches a report, an event or an error.
"""
