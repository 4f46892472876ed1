"""The offline engine: the real program under Pulumi's mock runtime (plan and render)."""
