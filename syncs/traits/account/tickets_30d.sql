select a.account_id, count(t.ticket_id) as tickets_30d
from {{ source('account') }} a
left join analytics.support_tickets t
  on t.account_id = a.account_id
 and t.created_at >= date '{{ var("today") }}' - interval '30 days'
group by a.account_id
