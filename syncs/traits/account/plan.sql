-- The plan of the account's current subscription ('none' when it has none).
select a.account_id, coalesce(s.plan, 'none') as plan
from {{ source('account') }} a
left join (
  select account_id, plan,
         row_number() over (partition by account_id order by started_at desc, subscription_id) as rn
  from analytics.subscriptions
  where ended_at is null
) s on s.account_id = a.account_id and s.rn = 1
