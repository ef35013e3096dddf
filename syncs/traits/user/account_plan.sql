select u.user_id, p.plan as account_plan
from {{ source('user') }} u
left join {{ ref('plan') }} p on p.account_id = u.account_id
