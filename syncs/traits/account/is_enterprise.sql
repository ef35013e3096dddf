select account_id, plan = 'enterprise' as is_enterprise
from {{ ref('plan') }}
