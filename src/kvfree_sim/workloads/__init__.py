"""Workloads that drive kvfree_rcu(): rcuscale's kfree test (kernel/rcu/rcuscale.c)."""
