"""The chain side: node connection, the local anvil, and the transaction sender."""
