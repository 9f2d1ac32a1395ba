"""What the DVC stages share: params.yaml's rules, file paths, byte-stable outputs, the thread and platform settings, the figures."""
