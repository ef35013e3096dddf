"""Salesforce REST/Bulk 2.0 emulator — see `activation.testing.salesforce` for the full docs.

    from simple_salesforce import Salesforce
    from activation.testing.salesforce_emulator import SalesforceEmulator, emulator_session

    with SalesforceEmulator() as emu:
        sf = Salesforce(instance_url=f"https://{emu.instance}", session_id=emu.token,
                        session=emulator_session(emu))

Standalone: ``python -m activation.testing.salesforce_emulator --port 8443``, then in the
client ``emulator_session("http://127.0.0.1:8443")`` with the printed token.
"""

from activation.testing.salesforce import *  # noqa: F403
from activation.testing.salesforce import __all__, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
