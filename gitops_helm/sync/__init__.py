"""The Git-to-cluster wing: what a commit of the config repository does to the cluster.

It mirrors ``release/``: a pure planner and the code that performs its plan.

    source.GitSource --checkout--> loop.SyncLoop --> apply.Syncer.sync
                                                       discover  (files -> manifests, file:line errors)
                                                       plan      (PURE: order, marks, inventory, GC)
                                                       adapters.kube (server-side apply, delete, state)

Modules: ``discover`` (find and parse manifests), ``plan`` (pure decisions), ``apply`` (one sync:
apply, garbage collection, sync-state ConfigMap, diff) and ``loop`` (the thread that runs a sync
on every new commit and every poll interval).
"""
