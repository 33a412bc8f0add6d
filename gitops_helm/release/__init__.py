"""The HelmRelease wing: what a HelmRelease does to its Helm release.

It mirrors ``sync/``: a pure planner and the code that performs its plan.

    controller --obj--> reconcile.Reconciler.reconcile
                          observe   (Helm storage read once per step; dependencies; drift)
                          desired   (digest of chart + values + release options; planner policy)
                          memory    (the planner's memory <-> the HelmRelease status)
                          plan      (PURE: observed + memory + desired -> next action; record_*)
                          actions   (one decision through adapters.helm, outcome recorded)
                          report    (phases, conditions, Events; one status patch per step)
                          diagnose  (after a failed action: which objects fail, their Events)

``identity`` says who owns a release; ``values_reader`` where values come from in the running
agent; ``drift`` compares live objects with the release manifest.
"""
