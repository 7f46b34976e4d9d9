"""Source text shared by the child-process scripts of the CLI tests: a translating identity method and a
stand-in evaluator, so that a run in a subprocess trains nothing heavy."""

STUBS = """
class Identity(Method):
    translates = True
    def fit(self, ctx): pass
    def translate(self, x, target): return x.clone()
    def localize(self, x): return (x[:, 0] + 1) / 2
    def state_dict(self): return {"w": torch.zeros(1)}
    def load_state_dict(self, state): pass

class Judge:
    threshold = 0.5
    def probs(self, images): return np.ones(len(images))
    def describe(self): return {"threshold": 0.5, "threshold_source": "tune", "test_auc": 0.5}
"""
