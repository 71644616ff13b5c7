"""The gateway's rules, pure Python and free of I/O: the cross-region transfer state machine and its deadlines,
redeem anywhere, settlement netting, callers and their policies, and whose accounts a transfer may join."""
