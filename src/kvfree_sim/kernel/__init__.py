"""The kernel services kvfree_rcu() lives on, one module per kernel file it models.

sched.py (kernel/sched), time.py (kernel/time), workqueue.py (kernel/workqueue.c),
rcu.py (kernel/rcu/tree.c), mm/ (mm/page_alloc.c, vmscan.c, slub.c, oom_kill.c),
system.py (wires them into one kernel).  None of it knows kvfree_rcu exists.
"""
