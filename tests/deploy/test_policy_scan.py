"""The policy scanner (checkov) on template.yaml: every finding is either fixed or listed,
with its reason, in the template's Metadata.PolicyScannerSuppressions; a listed entry that
matches nothing is stale and fails too. Skipped, saying so, when checkov is not installed
(scripts/ensure-tools.sh installs it)."""

import json
import os
import shutil
import subprocess
import unittest

import cfn

CHECKOV = os.environ.get("CHECKOV") or shutil.which("checkov")


@unittest.skipUnless(CHECKOV, "checkov is not installed")
class PolicyScan(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        out = subprocess.run(
            [CHECKOV, "-f", str(cfn.TEMPLATE), "--framework", "cloudformation",
             "--skip-download", "-o", "json", "--quiet"],
            capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
        report = json.loads(out.stdout)
        cls.findings = [(f["check_id"], f["resource"].split(".", 1)[1], f["check_name"])
                        for f in report["results"]["failed_checks"]]
        cls.suppressions = cfn.sam_template()["Metadata"]["PolicyScannerSuppressions"]

    def covered(self, check, resource):
        entry = self.suppressions.get(check)
        return entry is not None and ("*" in entry["Resources"] or resource in entry["Resources"])

    def test_every_finding_is_explained(self):
        unexplained = sorted({f for f in self.findings if not self.covered(f[0], f[1])})
        self.assertEqual(unexplained, [], "fix these, or list them with a reason in the template")

    def test_every_suppression_matches_a_finding_and_has_a_reason(self):
        for check, entry in self.suppressions.items():
            self.assertGreater(len(entry.get("Reason", "").split()), 5, check)
            for resource in entry["Resources"]:
                hits = [f for f in self.findings if f[0] == check and resource in ("*", f[1])]
                self.assertTrue(hits, f"stale suppression {check} for {resource}")


if __name__ == "__main__":
    unittest.main()
