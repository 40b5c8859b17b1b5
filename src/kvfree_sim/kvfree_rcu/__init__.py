"""kvfree_rcu(): the base design (tree.py, kernel/rcu/tree.c of v5.11) and its variants."""
