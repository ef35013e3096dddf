select u.user_id, count(t.ticket_id) as user_tickets_30d
from {{ source('user') }} u
left join analytics.support_tickets t
  on t.user_id = u.user_id
 and t.created_at >= date '{{ var("today") }}' - interval '30 days'
group by u.user_id
