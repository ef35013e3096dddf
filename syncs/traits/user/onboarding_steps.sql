-- How many of the three onboarding steps the user completed.
select u.user_id, count(distinct e.event) as onboarding_steps
from {{ source('user') }} u
left join analytics.product_events e
  on e.user_id = u.user_id
 and e.event in ('created_project', 'invited_teammate', 'connected_integration')
group by u.user_id
