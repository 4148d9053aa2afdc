"""The mock backend: an in-memory (or file-backed) hypervisor that behaves like a real one."""
