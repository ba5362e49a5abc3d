"""Local fake servers on 127.0.0.1 (port 0) that speak the real wire formats of Slack, arXiv and HF."""
