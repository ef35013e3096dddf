-- Users who did anything in the product in the 30 days before {{ var('today') }}.
select a.account_id, count(distinct e.user_id) as active_users_30d
from {{ source('account') }} a
left join analytics.product_events e
  on e.account_id = a.account_id
 and e.occurred_at >= date '{{ var("today") }}' - interval '30 days'
 and e.occurred_at < date '{{ var("today") }}' + interval '1 day'
group by a.account_id
